-- Quotes served by info's home page and /quote. Lengths match what the API accepts
-- (author 100, text 1000 characters), so a valid request always fits.
CREATE TABLE IF NOT EXISTS quotes (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    author VARCHAR(100) NOT NULL,
    text VARCHAR(1000) NOT NULL,
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
