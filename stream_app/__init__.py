"""The finpulse streaming service: Faust agents, Redis windows, alerts, replay, backtest."""
