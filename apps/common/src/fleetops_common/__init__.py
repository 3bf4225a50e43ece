"""Building blocks shared by the fleetops services (info and data)."""
