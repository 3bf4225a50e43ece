-- Accounts that may log in through info. Passwords stay in this tier, salted and hashed.
-- scheme names the hash: 'sha512' (the capstone's hex SHA-512 of password + salt, dev seed
-- users only) or 'scrypt' (a self-describing string; salt is then part of the hash).
-- Usernames compare byte for byte (utf8mb4_bin): 'Admin' is not 'admin'.
CREATE TABLE IF NOT EXISTS users (
    username VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    salt VARCHAR(64) NULL,
    scheme VARCHAR(16) NOT NULL,
    role ENUM('viewer', 'editor', 'admin') NOT NULL,
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (username)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
