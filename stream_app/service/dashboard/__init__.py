"""The desk dashboard: ``GET /`` on the worker's web port and the read API behind it.

``source`` is the read seam the stores implement (``DashboardSource``), ``api`` turns its
counts into ranked, bounded response models (``models``), ``feed`` polls the overview
once for every open stream, and ``routes`` binds all of it, with the static page under
``static/`` (plain JS/CSS and a vendored uPlot, no build step), to an aiohttp app.
"""

from stream_app.service.dashboard.api import DashboardApi, DashboardError, Limits
from stream_app.service.dashboard.feed import LiveFeed
from stream_app.service.dashboard.routes import install_dashboard
from stream_app.service.dashboard.source import (
    BucketCounts,
    DashboardSource,
    EntitySeries,
    EntityState,
    Headline,
    HeadlineLink,
)

__all__ = [
    "BucketCounts",
    "DashboardApi",
    "DashboardError",
    "DashboardSource",
    "EntitySeries",
    "EntityState",
    "Headline",
    "HeadlineLink",
    "Limits",
    "LiveFeed",
    "install_dashboard",
]
