-- The login dbvigil probes with, and the application database it watches.
CREATE ROLE dbvigil LOGIN PASSWORD 'dbvigil-demo';
CREATE DATABASE orders OWNER dbvigil;
