"""Users, passwords, tokens, device API keys and the role/permission matrix."""
