//! Admission control for new sessions, as in the clustered-instances design we follow: refuse new
//! sessions while the machine's memory or CPU use is above a high-water mark, accept again once
//! both are below a low-water mark (hysteresis, so the decision does not flap at the boundary).
//!
//! Contract: [`Admission::check`] samples the load (through [`LoadSource`], so tests inject
//! readings) and returns `Err` with a sentence naming the resource and both marks while refusing.
//! Only *new* sessions are refused; running ones are never stopped. On Linux the default source
//! reads `/proc/meminfo` (`MemAvailable` of `MemTotal`) and `/proc/stat` (busy share of all CPUs
//! since the previous sample, at most one sample per 250 ms).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Memory and CPU use, percent of the machine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// Memory in use, 0–100.
    pub memory_percent: f64,
    /// CPU busy, 0–100.
    pub cpu_percent: f64,
}

/// Where load readings come from.
pub trait LoadSource: Send + Sync {
    /// The current load; `None` when it cannot be read (admission then allows).
    fn sample(&self) -> Option<Load>;
}

/// Reads `/proc`.
#[derive(Debug, Default)]
pub struct ProcLoad {
    last: Mutex<Option<(Instant, u64, u64, f64)>>,
}

fn proc_memory() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let total = field("MemTotal:")?;
    let available = field("MemAvailable:")?;
    (total > 0.0).then(|| (100.0 * (1.0 - available / total)).clamp(0.0, 100.0))
}

fn proc_cpu_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 4 {
        return None;
    }
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((idle, v.iter().sum()))
}

impl LoadSource for ProcLoad {
    fn sample(&self) -> Option<Load> {
        let memory_percent = proc_memory()?;
        let (idle, total) = proc_cpu_ticks()?;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let cpu_percent = match *last {
            Some((at, _, _, cpu)) if at.elapsed() < Duration::from_millis(250) => cpu,
            Some((_, pidle, ptotal, _)) if total > ptotal => {
                let busy = (total - ptotal).saturating_sub(idle.saturating_sub(pidle));
                let cpu = 100.0 * busy as f64 / (total - ptotal) as f64;
                *last = Some((Instant::now(), idle, total, cpu));
                cpu
            }
            _ => {
                *last = Some((Instant::now(), idle, total, 0.0));
                0.0
            }
        };
        Some(Load {
            memory_percent,
            cpu_percent,
        })
    }
}

/// The admission decision with hysteresis.
pub struct Admission {
    high: f64,
    low: f64,
    refusing: AtomicBool,
    source: Box<dyn LoadSource>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("high", &self.high)
            .field("low", &self.low)
            .field("refusing", &self.refusing)
            .finish()
    }
}

impl Admission {
    /// Marks in percent (`low < high`), reading load from `source`.
    pub fn new(high_percent: u8, low_percent: u8, source: Box<dyn LoadSource>) -> Self {
        Self {
            high: f64::from(high_percent),
            low: f64::from(low_percent),
            refusing: AtomicBool::new(false),
            source,
        }
    }

    /// Whether new sessions are being refused (as of the last check).
    pub fn refusing(&self) -> bool {
        self.refusing.load(Ordering::Relaxed)
    }

    /// Samples the load and decides; `Err` explains a refusal.
    pub fn check(&self) -> Result<(), String> {
        let Some(load) = self.source.sample() else {
            return Ok(());
        };
        let was = self.refusing();
        let over = load.memory_percent > self.high || load.cpu_percent > self.high;
        let under = load.memory_percent < self.low && load.cpu_percent < self.low;
        let refusing = if was { !under } else { over };
        self.refusing.store(refusing, Ordering::Relaxed);
        if refusing {
            Err(format!(
                "memory {:.0}% / CPU {:.0}% of the machine in use; new sessions are refused above {:.0}% and accepted again once both are below {:.0}%",
                load.memory_percent, load.cpu_percent, self.high, self.low
            ))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    struct Fixed(Arc<Mutex<Load>>);
    impl LoadSource for Fixed {
        fn sample(&self) -> Option<Load> {
            Some(*self.0.lock().unwrap())
        }
    }

    #[test]
    fn hysteresis_between_the_marks() {
        let load = Arc::new(Mutex::new(Load {
            memory_percent: 50.0,
            cpu_percent: 10.0,
        }));
        let a = Admission::new(90, 80, Box::new(Fixed(load.clone())));
        assert!(a.check().is_ok());
        load.lock().unwrap().memory_percent = 95.0;
        let err = a.check().unwrap_err();
        assert!(err.contains("memory 95%"), "{err}");
        // Between the marks: still refusing.
        load.lock().unwrap().memory_percent = 85.0;
        assert!(a.check().is_err());
        // CPU alone above high also refuses; memory below low is not enough while CPU is high.
        load.lock().unwrap().memory_percent = 10.0;
        load.lock().unwrap().cpu_percent = 85.0;
        assert!(a.check().is_err());
        load.lock().unwrap().cpu_percent = 5.0;
        assert!(a.check().is_ok());
        // Between the marks again, coming from below: accepting.
        load.lock().unwrap().cpu_percent = 85.0;
        assert!(a.check().is_ok());
        load.lock().unwrap().cpu_percent = 91.0;
        assert!(a.check().is_err());
    }

    #[test]
    fn proc_readings_are_percentages() {
        let p = ProcLoad::default();
        let l = p.sample().expect("/proc is readable on Linux");
        assert!((0.0..=100.0).contains(&l.memory_percent));
        assert!((0.0..=100.0).contains(&l.cpu_percent));
    }
}
