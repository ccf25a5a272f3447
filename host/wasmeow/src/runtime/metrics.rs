//! The host's metrics in the Prometheus text exposition format (version 0.0.4).
//!
//! Contract: counters are lock-free atomics bumped on the event path; gauges (sessions by
//! state, outbox depth, plugin health) are read from their owners at scrape time, so a scrape
//! never shows stale state. The text is rendered by hand: the format is small and stable, and a
//! registry crate would add nothing the tests below do not pin down.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counters bumped by the runtime.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Decrypted messages received (all sessions).
    pub messages_in: Counter,
    /// Messages queued for sending (plugins and the admin API).
    pub messages_out: Counter,
    /// Messages that failed for good after queueing.
    pub send_failures: Counter,
    /// Messages that could not be decrypted.
    pub decrypt_failures: Counter,
    /// Retry receipts we sent for undecryptable messages.
    pub retries: Counter,
    /// Events handed to the plugin host.
    pub plugin_events: Counter,
    /// Events the plugin host refused (overload, quarantine).
    pub plugin_events_dropped: Counter,
    /// Sessions refused by admission control.
    pub admission_refusals: Counter,
    /// Reconnects scheduled after a disconnect.
    pub reconnects: Counter,
}

/// A scrape-time sample of one plugin.
#[derive(Debug, Clone)]
pub struct PluginSample {
    /// Its name.
    pub name: String,
    /// Events handled.
    pub handled: u64,
    /// Traps and deadline hits.
    pub failures: u64,
    /// Events dropped.
    pub dropped: u64,
    /// Events queued or running.
    pub in_flight: u64,
    /// Whether it is quarantined.
    pub quarantined: bool,
    /// Seconds spent handling events.
    pub busy_secs: f64,
}

/// A scrape-time sample of one campaign.
#[derive(Debug, Clone)]
pub struct CampaignSample {
    /// Its name.
    pub name: String,
    /// Recipients whose message was queued (since the host started).
    pub queued: u64,
    /// Recipients that failed.
    pub failed: u64,
    /// Recipients skipped because they opted out.
    pub opted_out: u64,
    /// Whether a run is going.
    pub running: bool,
}

/// Scrape-time gauges.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// (state name, number of sessions) for every state.
    pub sessions_by_state: Vec<(&'static str, u64)>,
    /// (session, outbox depth).
    pub outbox: Vec<(String, u64)>,
    /// (session, sends held back by rate limits so far).
    pub rate_limit_waits: Vec<(String, u64)>,
    /// Per-plugin samples.
    pub plugins: Vec<PluginSample>,
    /// Stored jobs.
    pub jobs: u64,
    /// Whether admission control is refusing new sessions.
    pub admission_refusing: bool,
    /// Per-campaign samples.
    pub campaigns: Vec<CampaignSample>,
}

/// A scrape-time sample of the webhook sender's counters
/// ([`crate::admin::WebhookStats::sample`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookSample {
    /// Events acknowledged with a 2xx.
    pub delivered: u64,
    /// Events given up on at once (a status that is not retried).
    pub refused: u64,
    /// Events given up on after every attempt failed with a retryable error.
    pub exhausted: u64,
    /// Events dropped from the full queue.
    pub dropped: u64,
    /// Events the broadcast channel skipped before they were queued.
    pub lagged: u64,
    /// Attempts after an event's first.
    pub retries: u64,
    /// Events waiting in the queue.
    pub queued: u64,
}

/// The webhook sender's metrics, to append to [`Metrics::render`]'s text (the admin API does,
/// when webhooks are configured).
pub fn render_webhooks(w: &WebhookSample) -> String {
    let mut out = String::with_capacity(768);
    family(
        &mut out,
        "wasmeow_webhook_deliveries_total",
        "counter",
        "Webhook events by final result: delivered (2xx), refused (a status that is not \
         retried), exhausted (every attempt failed), dropped (the queue was full), lagged (skipped \
         before they were queued).",
    );
    for (result, n) in [
        ("delivered", w.delivered),
        ("refused", w.refused),
        ("exhausted", w.exhausted),
        ("dropped", w.dropped),
        ("lagged", w.lagged),
    ] {
        let _ = writeln!(
            out,
            "wasmeow_webhook_deliveries_total{{result=\"{result}\"}} {n}"
        );
    }
    family(
        &mut out,
        "wasmeow_webhook_retries_total",
        "counter",
        "Webhook attempts after an event's first (after a 5xx, 408, 429, timeout or connection error).",
    );
    let _ = writeln!(out, "wasmeow_webhook_retries_total {}", w.retries);
    family(
        &mut out,
        "wasmeow_webhook_queue_depth",
        "gauge",
        "Webhook events waiting to be sent.",
    );
    let _ = writeln!(out, "wasmeow_webhook_queue_depth {}", w.queued);
    out
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

impl Metrics {
    /// Renders every metric.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(2048);
        let counters: [(&str, &str, &Counter); 9] = [
            (
                "wasmeow_messages_received_total",
                "Decrypted messages received.",
                &self.messages_in,
            ),
            (
                "wasmeow_messages_sent_total",
                "Messages queued for sending.",
                &self.messages_out,
            ),
            (
                "wasmeow_send_failures_total",
                "Queued messages that failed for good.",
                &self.send_failures,
            ),
            (
                "wasmeow_decrypt_failures_total",
                "Messages that could not be decrypted.",
                &self.decrypt_failures,
            ),
            (
                "wasmeow_retry_receipts_total",
                "Retry receipts sent for undecryptable messages.",
                &self.retries,
            ),
            (
                "wasmeow_plugin_events_total",
                "Events handed to the plugin host.",
                &self.plugin_events,
            ),
            (
                "wasmeow_plugin_events_dropped_total",
                "Events the plugin host did not queue (overload, quarantine).",
                &self.plugin_events_dropped,
            ),
            (
                "wasmeow_admission_refusals_total",
                "New sessions refused by admission control.",
                &self.admission_refusals,
            ),
            (
                "wasmeow_reconnects_total",
                "Reconnects scheduled after a disconnect.",
                &self.reconnects,
            ),
        ];
        for (name, help, c) in counters {
            family(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", c.get());
        }
        family(
            &mut out,
            "wasmeow_sessions",
            "gauge",
            "Sessions by connection state.",
        );
        for (state, n) in &g.sessions_by_state {
            let _ = writeln!(out, "wasmeow_sessions{{state=\"{state}\"}} {n}");
        }
        family(
            &mut out,
            "wasmeow_outbox_depth",
            "gauge",
            "Messages waiting in a session's persistent outbox.",
        );
        for (s, n) in &g.outbox {
            let _ = writeln!(out, "wasmeow_outbox_depth{{session=\"{}\"}} {n}", escape(s));
        }
        family(
            &mut out,
            "wasmeow_rate_limit_waits_total",
            "counter",
            "Sends the outbox held back to respect a session's rate limits.",
        );
        for (s, n) in &g.rate_limit_waits {
            let _ = writeln!(
                out,
                "wasmeow_rate_limit_waits_total{{session=\"{}\"}} {n}",
                escape(s)
            );
        }
        family(
            &mut out,
            "wasmeow_plugin_busy_seconds_total",
            "counter",
            "Time a plugin spent handling events (divide by calls + traps for the mean latency).",
        );
        for p in &g.plugins {
            let _ = writeln!(
                out,
                "wasmeow_plugin_busy_seconds_total{{plugin=\"{}\"}} {:.6}",
                escape(&p.name),
                p.busy_secs
            );
        }
        type Family = (
            &'static str,
            &'static str,
            &'static str,
            fn(&PluginSample) -> u64,
        );
        let plugin_families: [Family; 5] = [
            (
                "wasmeow_plugin_calls_total",
                "counter",
                "Events a plugin handled.",
                |p| p.handled,
            ),
            (
                "wasmeow_plugin_traps_total",
                "counter",
                "Plugin calls that trapped or hit their deadline.",
                |p| p.failures,
            ),
            (
                "wasmeow_plugin_dropped_total",
                "counter",
                "Events a plugin did not get (overload, quarantine).",
                |p| p.dropped,
            ),
            (
                "wasmeow_plugin_in_flight",
                "gauge",
                "Events queued or running in a plugin.",
                |p| p.in_flight,
            ),
            (
                "wasmeow_plugin_quarantined",
                "gauge",
                "1 while a plugin is quarantined.",
                |p| u64::from(p.quarantined),
            ),
        ];
        for (name, kind, help, f) in plugin_families {
            family(&mut out, name, kind, help);
            for p in &g.plugins {
                let _ = writeln!(out, "{name}{{plugin=\"{}\"}} {}", escape(&p.name), f(p));
            }
        }
        family(&mut out, "wasmeow_jobs", "gauge", "Stored scheduler jobs.");
        let _ = writeln!(out, "wasmeow_jobs {}", g.jobs);
        family(
            &mut out,
            "wasmeow_admission_refusing",
            "gauge",
            "1 while admission control refuses new sessions.",
        );
        let _ = writeln!(
            out,
            "wasmeow_admission_refusing {}",
            u64::from(g.admission_refusing)
        );
        family(
            &mut out,
            "wasmeow_campaign_recipients_total",
            "counter",
            "Campaign recipients handled since the host started, by outcome (queued, failed, opted_out).",
        );
        for c in &g.campaigns {
            for (outcome, n) in [
                ("queued", c.queued),
                ("failed", c.failed),
                ("opted_out", c.opted_out),
            ] {
                let _ = writeln!(
                    out,
                    "wasmeow_campaign_recipients_total{{campaign=\"{}\",outcome=\"{outcome}\"}} {n}",
                    escape(&c.name)
                );
            }
        }
        family(
            &mut out,
            "wasmeow_campaign_running",
            "gauge",
            "1 while a campaign run is going (paused runs included).",
        );
        for c in &g.campaigns {
            let _ = writeln!(
                out,
                "wasmeow_campaign_running{{campaign=\"{}\"}} {}",
                escape(&c.name),
                u64::from(c.running)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_and_labels() {
        let m = Metrics::default();
        m.messages_in.add(3);
        let g = Gauges {
            sessions_by_state: vec![("connected", 2), ("qr", 1)],
            outbox: vec![("ma\"in".into(), 4)],
            plugins: vec![PluginSample {
                name: "echo".into(),
                handled: 7,
                failures: 1,
                dropped: 0,
                in_flight: 0,
                quarantined: false,
                busy_secs: 0.25,
            }],
            rate_limit_waits: vec![("main".into(), 3)],
            jobs: 2,
            admission_refusing: false,
            campaigns: vec![CampaignSample {
                name: "news".into(),
                queued: 3,
                failed: 1,
                opted_out: 2,
                running: true,
            }],
        };
        let text = m.render(&g);
        assert!(text.contains(
            "# TYPE wasmeow_messages_received_total counter\nwasmeow_messages_received_total 3\n"
        ));
        assert!(text.contains("wasmeow_sessions{state=\"connected\"} 2\n"));
        assert!(text.contains("wasmeow_outbox_depth{session=\"ma\\\"in\"} 4\n"));
        assert!(text.contains("wasmeow_plugin_calls_total{plugin=\"echo\"} 7\n"));
        assert!(text.contains("wasmeow_jobs 2\n"));
        assert!(text.contains("wasmeow_rate_limit_waits_total{session=\"main\"} 3\n"));
        assert!(text.contains("wasmeow_plugin_busy_seconds_total{plugin=\"echo\"} 0.250000\n"));
        assert!(text.contains(
            "wasmeow_campaign_recipients_total{campaign=\"news\",outcome=\"opted_out\"} 2\n"
        ));
        assert!(text.contains("wasmeow_campaign_running{campaign=\"news\"} 1\n"));
        let hooks = render_webhooks(&WebhookSample {
            delivered: 5,
            refused: 1,
            exhausted: 2,
            dropped: 3,
            lagged: 4,
            retries: 7,
            queued: 6,
        });
        for want in [
            "wasmeow_webhook_deliveries_total{result=\"delivered\"} 5\n",
            "wasmeow_webhook_deliveries_total{result=\"refused\"} 1\n",
            "wasmeow_webhook_deliveries_total{result=\"exhausted\"} 2\n",
            "wasmeow_webhook_deliveries_total{result=\"dropped\"} 3\n",
            "wasmeow_webhook_deliveries_total{result=\"lagged\"} 4\n",
            "wasmeow_webhook_retries_total 7\n",
            "wasmeow_webhook_queue_depth 6\n",
        ] {
            assert!(hooks.contains(want), "{want} in {hooks}");
        }
        let text = format!("{text}{hooks}");
        // Every sample line belongs to a declared family.
        let declared: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(declared.contains(&name), "{name} undeclared");
        }
    }
}
