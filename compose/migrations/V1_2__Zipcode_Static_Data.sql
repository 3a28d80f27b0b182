INSERT INTO zipcode VALUES ('07001', 'Avenel', 'NJ');
INSERT INTO zipcode VALUES ('07002', 'Bayonne', 'NJ');
INSERT INTO zipcode VALUES ('07003', 'Bloomfield', 'NJ');
