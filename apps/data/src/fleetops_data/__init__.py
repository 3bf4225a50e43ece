"""fleetops data: users, credential checks and quotes on MariaDB, behind a token-protected API."""
