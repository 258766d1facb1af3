"""Read-only pages in the browser (/dashboard, /me) and the JSON endpoints behind them."""
