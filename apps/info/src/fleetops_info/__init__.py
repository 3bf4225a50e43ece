"""fleetops info: the public API (login, JWT, CIDR conversions, quotes page)."""
