//! The `process_*` metrics every Prometheus client library exports (client_golang's process
//! collector on Linux: same names, types, units and meanings), read from `/proc/self` when
//! a scrape renders. These are kernel reads of a few microseconds; one that fails leaves
//! its metric out of that scrape, never the scrape itself.

use std::sync::OnceLock;

use super::Sink;
use super::text::CounterValue;

/// What `/proc/self` said at the scrape; None where a read failed.
#[derive(Debug, Clone, Default)]
pub struct ProcessScrape {
    pub cpu_seconds: Option<f64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<f64>,
    pub virtual_memory_bytes: Option<u64>,
    pub virtual_memory_max_bytes: Option<f64>,
    pub resident_memory_bytes: Option<u64>,
    pub start_time_seconds: Option<f64>,
    pub network_receive_bytes: Option<u64>,
    pub network_transmit_bytes: Option<u64>,
}

impl ProcessScrape {
    /// Reads this process's figures now.
    pub fn read() -> ProcessScrape {
        let stat = logged("/proc/self/stat", read_stat());
        let net = logged("/proc/self/net/dev", read_net_dev());
        ProcessScrape {
            cpu_seconds: stat.as_ref().map(|s| s.cpu_seconds),
            open_fds: logged("/proc/self/fd", open_fds()),
            // SAFETY: getrlimit writes into the struct it is given and nothing else.
            max_fds: logged(
                "RLIMIT_NOFILE",
                soft_limit(|l| unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, l) }),
            ),
            virtual_memory_bytes: stat.as_ref().map(|s| s.vsize),
            // SAFETY: as above.
            virtual_memory_max_bytes: logged(
                "RLIMIT_AS",
                soft_limit(|l| unsafe { libc::getrlimit(libc::RLIMIT_AS, l) }),
            ),
            resident_memory_bytes: stat.as_ref().map(|s| s.rss_bytes),
            start_time_seconds: stat.as_ref().and_then(|s| s.start_time_seconds),
            network_receive_bytes: net.map(|(rx, _)| rx),
            network_transmit_bytes: net.map(|(_, tx)| tx),
        }
    }

    pub(super) fn write(&self, f: &mut impl Sink) -> std::fmt::Result {
        if let Some(v) = self.cpu_seconds {
            f.single_counter(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                CounterValue::Seconds(v),
            )?;
        }
        let gauges = [
            (
                "process_open_fds",
                "Number of open file descriptors.",
                self.open_fds.map(|n| n as f64),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                self.max_fds,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                self.virtual_memory_bytes.map(|n| n as f64),
            ),
            (
                "process_virtual_memory_max_bytes",
                "Maximum amount of virtual memory available in bytes.",
                self.virtual_memory_max_bytes,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                self.resident_memory_bytes.map(|n| n as f64),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                self.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                f.single(name, help, v)?;
            }
        }
        let counters = [
            (
                "process_network_receive_bytes",
                "Number of bytes received by the process over the network.",
                self.network_receive_bytes,
            ),
            (
                "process_network_transmit_bytes",
                "Number of bytes sent by the process over the network.",
                self.network_transmit_bytes,
            ),
        ];
        for (name, help, value) in counters {
            if let Some(n) = value {
                f.single_counter(name, help, CounterValue::Count(n))?;
            }
        }
        Ok(())
    }
}

/// A failed read is left out of the scrape and said at debug level: the scrape goes on.
fn logged<T>(what: &str, read: Result<T, String>) -> Option<T> {
    read.map_err(|e| tracing::debug!(source = what, error = %e, "process metric left out"))
        .ok()
}

struct Stat {
    cpu_seconds: f64,
    vsize: u64,
    rss_bytes: u64,
    start_time_seconds: Option<f64>,
}

fn read_stat() -> Result<Stat, String> {
    let text = std::fs::read_to_string("/proc/self/stat").map_err(|e| e.to_string())?;
    parse_stat(&text, clock_ticks(), page_size(), boot_time())
}

/// Fields of `/proc/self/stat` (proc(5)); the command name in parentheses may hold spaces
/// and parentheses, so fields are counted from its closing one.
fn parse_stat(text: &str, ticks: f64, page: u64, boot_time: Option<u64>) -> Result<Stat, String> {
    let after = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .ok_or("no command name")?;
    // Field 3 (state) is the first after the name.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| -> Result<u64, String> {
        fields
            .get(n - 3)
            .ok_or_else(|| format!("field {n} is missing"))?
            .parse()
            .map_err(|e| format!("field {n}: {e}"))
    };
    let (utime, stime, start, vsize, rss) =
        (field(14)?, field(15)?, field(22)?, field(23)?, field(24)?);
    Ok(Stat {
        cpu_seconds: (utime + stime) as f64 / ticks,
        vsize,
        rss_bytes: rss * page,
        start_time_seconds: boot_time.map(|b| b as f64 + start as f64 / ticks),
    })
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf reads a constant of the system; it has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

fn page_size() -> u64 {
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).ok().filter(|p| *p > 0).unwrap_or(4096)
}

/// `btime` of `/proc/stat`: when the system booted, which process start times count from.
/// It does not change while the system runs, so it is read once.
fn boot_time() -> Option<u64> {
    static BOOT: OnceLock<Option<u64>> = OnceLock::new();
    *BOOT.get_or_init(|| {
        let text = logged(
            "/proc/stat",
            std::fs::read_to_string("/proc/stat").map_err(|e| e.to_string()),
        )?;
        text.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())
    })
}

fn open_fds() -> Result<u64, String> {
    let entries = std::fs::read_dir("/proc/self/fd").map_err(|e| e.to_string())?;
    Ok(entries.count() as u64)
}

/// A soft resource limit as client_golang reports it: "unlimited" is 2^64 - 1.
fn soft_limit(getrlimit: impl FnOnce(&mut libc::rlimit) -> libc::c_int) -> Result<f64, String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    if getrlimit(&mut limit) != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    Ok(limit.rlim_cur as f64)
}

fn read_net_dev() -> Result<(u64, u64), String> {
    let text = std::fs::read_to_string("/proc/self/net/dev").map_err(|e| e.to_string())?;
    parse_net_dev(&text)
}

/// Bytes received and sent, summed over every interface of the process's network
/// namespace, as client_golang sums them.
fn parse_net_dev(text: &str) -> Result<(u64, u64), String> {
    let mut total = (0u64, 0u64);
    // Two header lines, then `name: rx_bytes rx_packets ... (8 fields) tx_bytes ...`.
    for line in text.lines().skip(2) {
        let (_, counters) = line.split_once(':').ok_or("a line without an interface")?;
        let fields: Vec<&str> = counters.split_whitespace().collect();
        let number = |i: usize| -> Result<u64, String> {
            fields
                .get(i)
                .ok_or("a short line")?
                .parse::<u64>()
                .map_err(|e| e.to_string())
        };
        total.0 = total.0.saturating_add(number(0)?);
        total.1 = total.1.saturating_add(number(8)?);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with a space and a parenthesis, as a process may choose.
        let line = "4242 (db vigil) x) S 1 4242 4242 0 -1 4194560 1200 0 0 0 250 50 0 0 20 0 9 0 123400 1073741824 2560 18446744073709551615 1 1 0 0 0 0 0 4096 17991 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(line, 100.0, 4096, Some(1_700_000_000)).unwrap();
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.vsize, 1_073_741_824);
        assert_eq!(s.rss_bytes, 2560 * 4096);
        assert_eq!(s.start_time_seconds, Some(1_700_000_000.0 + 1234.0));
        assert!(parse_stat("4242 (dbvigil) S 1", 100.0, 4096, None).is_err());
    }

    #[test]
    fn network_bytes_are_summed_over_interfaces() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
            face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
            lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0\n  \
            eth0:  5000      20    0    0    0     0          0         0      700       7    0    0    0     0       0          0\n";
        assert_eq!(parse_net_dev(text).unwrap(), (6000, 1700));
        assert!(parse_net_dev("h\nh\neth0: 1 2\n").is_err());
    }

    #[test]
    fn this_process_reads_whole() {
        let p = ProcessScrape::read();
        assert!(p.cpu_seconds.is_some() && p.open_fds.is_some_and(|n| n >= 3));
        assert!(p.resident_memory_bytes.is_some_and(|b| b > 0));
        assert!(p.start_time_seconds.is_some_and(|t| t > 1.6e9));
        assert!(p.max_fds.is_some() && p.virtual_memory_max_bytes.is_some());
        assert!(p.network_receive_bytes.is_some());
    }
}
