"""The worker's service side: Faust app, stages, web API and the desk dashboard."""
