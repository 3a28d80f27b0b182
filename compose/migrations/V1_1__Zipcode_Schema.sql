CREATE TABLE zipcode (
    zip CHAR(5) PRIMARY KEY,
    city VARCHAR(64) NOT NULL,
    state CHAR(2) NOT NULL
);
