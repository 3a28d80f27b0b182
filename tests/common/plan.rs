//! The CSV plan of the background document (shared/background/remote-database-updater.md)
//! and its four scripts, as the migration tests write them.

use std::path::Path;

pub const HEADER: &str = "sql_runner_host,sql_runner_userid,sql_runner_password,database_host,database_userid,database_password,port,database,sql_script_to_run";

const SCRIPTS: [(&str, &str); 4] = [
    (
        "V1_1__Zipcode_Schema",
        "CREATE TABLE zipcode (zip CHAR(5) PRIMARY KEY, city VARCHAR(40));\n",
    ),
    (
        "V1_2__Zipcode_Static_Data",
        "INSERT INTO zipcode VALUES ('07001', 'Avenel');\nINSERT INTO zipcode VALUES ('07002', 'Bayonne');\n",
    ),
    (
        "V2_1__Add_Spatial_Data",
        "ALTER TABLE zipcode ADD COLUMN lat DECIMAL(8,5);\nUPDATE zipcode SET lat = 40.58;\n",
    ),
    (
        "V3_1__Zipcode_Test_Data",
        "INSERT INTO zipcode VALUES ('99999', 'Testville', 0);\n",
    ),
];

/// Writes the four scripts where the plan names them, under `dir`.
pub fn write_scripts(dir: &Path) {
    let sql = dir.join("environment_creators/src/sql");
    std::fs::create_dir_all(&sql).unwrap();
    for (name, text) in SCRIPTS {
        std::fs::write(sql.join(format!("{name}.sql")), text).unwrap();
    }
}

/// The rows of the plan (without the header): `runner` is the three runner columns,
/// `database` the host, user and password columns, and every row runs on database `app`.
pub fn rows(runner: &str, database: &str, port: u16) -> String {
    SCRIPTS
        .iter()
        .map(|(name, _)| {
            format!("{runner},{database},{port},app,environment_creators/src/sql/{name}.sql\n")
        })
        .collect()
}
