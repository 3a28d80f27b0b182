ALTER TABLE zipcode ADD COLUMN latitude DECIMAL(8, 5) NULL, ADD COLUMN longitude DECIMAL(8, 5) NULL;
UPDATE zipcode SET latitude = 40.58, longitude = -74.28 WHERE zip = '07001';
