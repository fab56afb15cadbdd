//! Interface byte counters from `/proc/net/dev` (the network namespace of the reader).

use std::io;
use std::path::Path;

/// Cumulative counters of one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceCounters {
    pub name: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// Parses `/proc/net/dev`. Lines that do not parse are skipped, never an error.
pub fn parse_proc_net_dev(text: &str, out: &mut Vec<InterfaceCounters>) {
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() || name.contains('|') {
            continue;
        }
        let mut fields = rest.split_ascii_whitespace();
        // rx: bytes packets errs drop fifo frame compressed multicast; then tx: bytes ...
        let rx = fields.next().and_then(|f| f.parse::<u64>().ok());
        let tx = fields.nth(7).and_then(|f| f.parse::<u64>().ok());
        if let (Some(rx_bytes), Some(tx_bytes)) = (rx, tx) {
            out.push(InterfaceCounters {
                name: name.to_string(),
                rx_bytes,
                tx_bytes,
            });
        }
    }
}

pub fn read_proc_net_dev(path: &Path, out: &mut Vec<InterfaceCounters>) -> io::Result<()> {
    let text = std::fs::read_to_string(path)?;
    parse_proc_net_dev(&text, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_dev() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo:    3193      29    0    0    0     0          0         0     3194      29    0    0    0     0       0          0\n  \
eth0: 123456789 100 0 0 0 0 0 0 987654321 50 0 0 0 0 0 0\n  bad: 1 2\n";
        let mut out = Vec::new();
        parse_proc_net_dev(text, &mut out);
        assert_eq!(
            out,
            vec![
                InterfaceCounters {
                    name: "lo".into(),
                    rx_bytes: 3193,
                    tx_bytes: 3194
                },
                InterfaceCounters {
                    name: "eth0".into(),
                    rx_bytes: 123456789,
                    tx_bytes: 987654321
                },
            ]
        );
    }
}
