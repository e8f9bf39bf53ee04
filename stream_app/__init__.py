"""The finpulse streaming service: Faust agents, Redis windows, spike alerts, replay and backtest."""
