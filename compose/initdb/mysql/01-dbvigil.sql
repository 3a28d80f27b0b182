-- The background document's database, and dbvigil's login: probes, migrations, and the
-- demo's read-only switch (SYSTEM_VARIABLES_ADMIN for SET GLOBAL read_only).
CREATE DATABASE IF NOT EXISTS zipster;
CREATE USER 'dbvigil'@'%' IDENTIFIED BY 'dbvigil-demo';
GRANT ALL ON zipster.* TO 'dbvigil'@'%';
GRANT PROCESS ON *.* TO 'dbvigil'@'%';
-- Read-only switches in the demo are done as root.
