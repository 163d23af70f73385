"""usdt."""
