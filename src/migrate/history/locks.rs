//! Who holds a tool's lock: PostgreSQL advisory locks and MySQL named locks, found from
//! the keys each tool derives (in its own module) with the hashes below.

use super::HistoryError;
use super::LockHeld;
use super::table::text;
use crate::migrate::conn::{DbConn, Engine};
use crate::time::Timestamp;

pub(super) async fn current_database(conn: &mut DbConn) -> Result<String, HistoryError> {
    let sql = match conn.engine() {
        Engine::Postgres => "SELECT CAST(current_database() AS TEXT)",
        Engine::MySql => "SELECT CAST(DATABASE() AS CHAR)",
        Engine::Sqlite => return Ok(String::new()),
    };
    let rows = conn.fetch(sql).await.map_err(HistoryError::DatabaseName)?;
    Ok(rows.first().and_then(|r| text(r, 0)).unwrap_or_default())
}

/// Who holds one of these advisory locks (`pg_try_advisory_lock(bigint)`), if anyone. Since
/// when: the holding session's start, as these tools take their lock right after connecting.
pub(in crate::migrate) async fn pg_advisory_holder(
    conn: &mut DbConn,
    keys: &[i64],
) -> Result<Option<LockHeld>, sqlx::Error> {
    let keys = keys
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let rows = conn
        .fetch_with(
            "SELECT CAST(l.pid AS TEXT), CAST(a.usename AS TEXT), CAST(a.application_name AS TEXT), \
             CAST(coalesce(host(a.client_addr), 'local socket') AS TEXT), \
             CAST(extract(epoch from a.backend_start) AS TEXT) \
             FROM pg_catalog.pg_locks l LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
             AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) \
             AND ((CAST(l.classid AS bigint) << 32) | CAST(l.objid AS bigint)) = ANY (CAST(string_to_array($1, ',') AS bigint[])) \
             ORDER BY l.pid LIMIT 1",
            &[&keys],
        )
        .await?;
    Ok(rows.first().map(|r| {
        let mut holder = format!("PostgreSQL backend {}", text(r, 0).unwrap_or_default());
        if let Some(user) = text(r, 1).filter(|u| !u.is_empty()) {
            holder.push_str(&format!(", user {user}"));
        }
        if let Some(app) = text(r, 2).filter(|a| !a.is_empty()) {
            holder.push_str(&format!(", application {app:?}"));
        }
        if let Some(from) = text(r, 3) {
            holder.push_str(&format!(", from {from}"));
        }
        LockHeld {
            since: text(r, 4)
                .and_then(|t| t.parse().ok())
                .map(Timestamp::from_secs_f64),
            holder,
        }
    }))
}

/// The connection holding one of these named locks (GET_LOCK), from IS_USED_LOCK. MySQL
/// does not record when a named lock was taken; the holder's account shows when the
/// processlist lets us see it.
pub(in crate::migrate) async fn mysql_lock_holder(
    conn: &mut DbConn,
    names: &[String],
) -> Result<Option<LockHeld>, sqlx::Error> {
    for name in names {
        let rows = conn
            .fetch_with(
                "SELECT CAST(IS_USED_LOCK(?) AS CHAR), \
                 (SELECT CAST(CONCAT(p.user, '@', p.host) AS CHAR) FROM information_schema.processlist p WHERE p.id = IS_USED_LOCK(?))",
                &[name, name],
            )
            .await?;
        let Some(row) = rows.first() else { continue };
        let Some(id) = text(row, 0) else { continue };
        let mut holder = format!("MySQL connection {id}");
        if let Some(account) = text(row, 1) {
            holder.push_str(&format!(", user {account}"));
        }
        return Ok(Some(LockHeld {
            since: None,
            holder,
        }));
    }
    Ok(None)
}

/// CRC-32 (IEEE 802.3), as Go's crc32.ChecksumIEEE and the crc crate's CRC_32_ISO_HDLC.
pub(super) fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// Java's String.hashCode.
pub(super) fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_ieee() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn java_hash_matches_string_hash_code() {
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("hello"), 99_162_322);
    }
}
