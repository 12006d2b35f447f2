-- Sample data for `tidemark quickstart`. {ROWS} is replaced by the row count.
CREATE DATABASE shop CHARACTER SET utf8mb4;
USE shop;
CREATE TABLE customers (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  email VARCHAR(150) NOT NULL,
  country CHAR(2) NOT NULL DEFAULT 'FR',
  created_at DATETIME(6) NOT NULL,
  UNIQUE KEY uk_email (email),
  KEY k_country (country)
) ENGINE=InnoDB;
CREATE TABLE products (
  sku VARCHAR(20) NOT NULL PRIMARY KEY,
  title VARCHAR(200) NOT NULL,
  price DECIMAL(10,2) NOT NULL,
  attributes JSON,
  picture BLOB
) ENGINE=InnoDB;
CREATE TABLE orders (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  customer_id INT UNSIGNED NOT NULL,
  sku VARCHAR(20) NOT NULL,
  quantity SMALLINT NOT NULL,
  total DECIMAL(12,2) NOT NULL,
  status ENUM('new','paid','shipped','cancelled') NOT NULL DEFAULT 'new',
  note TEXT,
  ordered_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  KEY k_customer (customer_id),
  CONSTRAINT fk_customer FOREIGN KEY (customer_id) REFERENCES customers (id),
  CONSTRAINT fk_product FOREIGN KEY (sku) REFERENCES products (sku)
) ENGINE=InnoDB;
CREATE TABLE order_audit (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  order_id BIGINT NOT NULL,
  at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
) ENGINE=InnoDB;

INSERT INTO customers (name, email, country, created_at)
SELECT CONCAT('Customer ', seq), CONCAT('c', seq, '@example.com'),
       ELT(1 + seq % 5, 'FR', 'DE', 'JP', 'BR', 'US'),
       '2024-01-01' + INTERVAL seq SECOND + INTERVAL (seq % 1000000) MICROSECOND
FROM seq_1_to_{CUSTOMERS};
INSERT INTO products (sku, title, price, attributes, picture)
SELECT CONCAT('SKU-', LPAD(seq, 6, '0')), CONCAT('Product ', seq, ' ☕'), seq % 1000 + 0.99,
       JSON_OBJECT('color', ELT(1 + seq % 3, 'red', 'green', 'blue'), 'weight', seq % 50),
       UNHEX(REPEAT(LPAD(HEX(seq % 256), 2, '0'), 64))
FROM seq_1_to_1000;
INSERT INTO orders (customer_id, sku, quantity, total, status, note, ordered_at)
SELECT 1 + seq % {CUSTOMERS}, CONCAT('SKU-', LPAD(1 + seq % 1000, 6, '0')), 1 + seq % 7,
       (1 + seq % 7) * (seq % 1000 + 0.99), ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'cancelled'),
       IF(seq % 10 = 0, NULL, CONCAT('note for order ', seq)),
       '2025-01-01' + INTERVAL seq MINUTE
FROM seq_1_to_{ROWS};

CREATE VIEW order_totals AS
  SELECT c.country, COUNT(*) AS orders, SUM(o.total) AS revenue
  FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.country;
CREATE VIEW big_countries AS SELECT country FROM order_totals WHERE orders > 10;
CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW
  INSERT INTO order_audit (order_id) VALUES (NEW.id);
CREATE PROCEDURE orders_of(IN cid INT UNSIGNED) SELECT * FROM orders WHERE customer_id = cid;
CREATE FUNCTION order_count(cid INT UNSIGNED) RETURNS INT READS SQL DATA
  RETURN (SELECT COUNT(*) FROM orders WHERE customer_id = cid);
