//! `[[campaign]]` tables: validation into [`CampaignConfig`], including the recipient list (inline
//! or a CSV file) checked against the message template, so a campaign that would fail for some
//! recipient is refused at start-up, naming the file, line and what is missing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;
use serde_spanned::Spanned;
use wasmeow_scheduler::{Pacing, Plan, Recipient, Schedule, SendWindow, Template};

use super::{ConfigError, SessionConfig, Validator, check_name};

/// The most recipients one campaign may list: its progress record (one entry per recipient,
/// rewritten with every send) stays far below the store's value limit, and at safe sending rates
/// a run of this size already takes weeks.
pub const MAX_RECIPIENTS: usize = 100_000;

/// One `[[campaign]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCampaign {
    name: Spanned<String>,
    session: Spanned<String>,
    schedule: Spanned<String>,
    timezone: Option<Spanned<String>>,
    text: Spanned<String>,
    #[serde(default)]
    recipients: Option<Spanned<Vec<Spanned<toml::Table>>>>,
    recipients_file: Option<Spanned<String>>,
    window: Option<Spanned<String>>,
    #[serde(default)]
    days: Option<Spanned<Vec<Spanned<String>>>>,
    min_gap_secs: Option<Spanned<u64>>,
    max_gap_secs: Option<Spanned<u64>>,
    pause_every: Option<Spanned<u32>>,
    pause_secs: Option<Spanned<u64>>,
    catch_up_mins: Option<Spanned<u32>>,
    #[serde(default)]
    opt_out: Option<Spanned<Vec<Spanned<String>>>>,
    opt_out_reply: Option<Spanned<String>>,
    enabled: Option<bool>,
}

/// A validated campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignConfig {
    /// Unique name (letters, digits, `-`, `_`).
    pub name: String,
    /// The `[[session]]` that sends it.
    pub session: String,
    /// Schedule, message, recipients, pacing and window.
    pub plan: Plan,
    /// Messages (compared trimmed, case-insensitively) with which a recipient opts out of every
    /// campaign of this session.
    pub opt_out: Vec<String>,
    /// Sent once to someone who just opted out, if set.
    pub opt_out_reply: Option<String>,
    /// Whether it runs.
    pub enabled: bool,
}

impl Validator<'_> {
    pub(super) fn campaigns(
        &self,
        list: Vec<RawCampaign>,
        sessions: &[SessionConfig],
    ) -> Result<Vec<CampaignConfig>, ConfigError> {
        let session_names: BTreeSet<&str> = sessions.iter().map(|s| s.name.as_str()).collect();
        let mut seen = BTreeMap::new();
        let mut out = Vec::with_capacity(list.len());
        for (i, c) in list.into_iter().enumerate() {
            let key = format!("campaign[{i}]");
            let name = c.name.get_ref().clone();
            if let Err(msg) = check_name(&name) {
                return self.err(Some(c.name.span()), format!("{key}.name"), msg);
            }
            if let Some(prev) = seen.insert(name.clone(), i) {
                return self.err(
                    Some(c.name.span()),
                    format!("{key}.name"),
                    format!("{name:?} is already used by campaign[{prev}]"),
                );
            }
            if !session_names.contains(c.session.get_ref().as_str()) {
                return self.err(
                    Some(c.session.span()),
                    format!("{key}.session"),
                    format!("no [[session]] is named {:?}", c.session.get_ref()),
                );
            }
            let tz = c.timezone.as_ref().map_or("UTC", |t| t.get_ref().as_str());
            let schedule = Schedule::cron(c.schedule.get_ref(), tz).or_else(|e| {
                let span = match (&e, &c.timezone) {
                    (wasmeow_scheduler::ScheduleError::BadTimeZone(_), Some(t)) => t.span(),
                    _ => c.schedule.span(),
                };
                self.err(Some(span), format!("{key}.schedule"), e.to_string())
            })?;
            let template = Template::parse(c.text.get_ref())
                .or_else(|e| self.err(Some(c.text.span()), format!("{key}.text"), e.to_string()))?;
            let recipients = self.recipients(&c, &key, &template)?;
            let pacing = self.pacing(&c, &key)?;
            let window = self.window(&c, &key, tz)?;
            let catch_up_ms = match &c.catch_up_mins {
                None => 60 * 60_000,
                Some(m) => i64::from(*m.get_ref()) * 60_000,
            };
            let opt_out = match &c.opt_out {
                None => vec!["STOP".to_string()],
                Some(list) => {
                    let mut words = Vec::new();
                    for (j, w) in list.get_ref().iter().enumerate() {
                        let t = w.get_ref().trim();
                        if t.is_empty() || t.chars().count() > 40 {
                            return self.err(
                                Some(w.span()),
                                format!("{key}.opt_out[{j}]"),
                                "must be a word or short phrase (1 to 40 characters)",
                            );
                        }
                        words.push(t.to_string());
                    }
                    words
                }
            };
            let opt_out_reply = match &c.opt_out_reply {
                Some(r) if r.get_ref().trim().is_empty() => {
                    return self.err(
                        Some(r.span()),
                        format!("{key}.opt_out_reply"),
                        "is empty: leave it out to send no confirmation",
                    );
                }
                r => r.as_ref().map(|r| r.get_ref().clone()),
            };
            out.push(CampaignConfig {
                name,
                session: c.session.get_ref().clone(),
                plan: Plan {
                    schedule,
                    template,
                    recipients,
                    pacing,
                    window,
                    catch_up_ms,
                },
                opt_out,
                opt_out_reply,
                enabled: c.enabled.unwrap_or(true),
            });
        }
        Ok(out)
    }

    fn recipients(
        &self,
        c: &RawCampaign,
        key: &str,
        template: &Template,
    ) -> Result<Vec<Recipient>, ConfigError> {
        let vars = template.variables();
        let mut out: Vec<Recipient> = Vec::new();
        let mut phones = BTreeMap::new();
        match (&c.recipients, &c.recipients_file) {
            (Some(_), Some(f)) => {
                return self.err(
                    Some(f.span()),
                    format!("{key}.recipients_file"),
                    "set either recipients or recipients_file, not both",
                );
            }
            (None, None) => {
                return self.err(
                    Some(c.name.span()),
                    format!("{key}.recipients"),
                    "is missing: list recipients inline or name a CSV file with recipients_file",
                );
            }
            (Some(list), None) => {
                for (j, item) in list.get_ref().iter().enumerate() {
                    let rkey = format!("{key}.recipients[{j}]");
                    let mut map = BTreeMap::new();
                    let mut phone = None;
                    for (k, v) in item.get_ref() {
                        let value = match v {
                            toml::Value::String(s) => s.clone(),
                            toml::Value::Integer(n) => n.to_string(),
                            other => {
                                return self.err(
                                    Some(item.span()),
                                    format!("{rkey}.{k}"),
                                    format!("must be a string, got a {}", other.type_str()),
                                );
                            }
                        };
                        if k == "phone" {
                            phone = Some(value);
                        } else {
                            map.insert(k.clone(), value);
                        }
                    }
                    let Some(phone) = phone else {
                        return self.err(
                            Some(item.span()),
                            format!("{rkey}.phone"),
                            "is missing: every recipient needs a phone number",
                        );
                    };
                    let r = Recipient::new(&phone, map)
                        .or_else(|m| self.err(Some(item.span()), format!("{rkey}.phone"), m))?;
                    if let Some(v) = vars.iter().find(|v| !r.vars.contains_key(**v)) {
                        return self.err(
                            Some(item.span()),
                            rkey,
                            format!("has no {v:?}, which the text uses as {{{v}}}"),
                        );
                    }
                    if let Some(prev) = phones.insert(r.phone.clone(), j) {
                        return self.err(
                            Some(item.span()),
                            format!("{rkey}.phone"),
                            format!("{} is already recipient[{prev}]", r.phone),
                        );
                    }
                    out.push(r);
                }
            }
            (None, Some(f)) => {
                let path = self.path(f.get_ref());
                let fkey = format!("{key}.recipients_file");
                let text = std::fs::read_to_string(&path).or_else(|e| {
                    self.err(
                        Some(f.span()),
                        fkey.clone(),
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                out = read_csv(&path, &text, &vars)?;
            }
        }
        let span = c
            .recipients
            .as_ref()
            .map(Spanned::span)
            .or(c.recipients_file.as_ref().map(Spanned::span));
        if out.is_empty() {
            return self.err(span, format!("{key}.recipients"), "lists nobody");
        }
        if out.len() > MAX_RECIPIENTS {
            return self.err(
                span,
                format!("{key}.recipients"),
                format!(
                    "lists {} recipients; a campaign takes at most {MAX_RECIPIENTS} (split the list)",
                    out.len()
                ),
            );
        }
        Ok(out)
    }

    fn pacing(&self, c: &RawCampaign, key: &str) -> Result<Pacing, ConfigError> {
        let mut p = Pacing::default();
        let secs = |v: &Option<Spanned<u64>>, name: &str, default: u64| match v {
            None => Ok(default * 1000),
            Some(s) if *s.get_ref() <= 86_400 => Ok(*s.get_ref() * 1000),
            Some(s) => self.err(
                Some(s.span()),
                format!("{key}.{name}"),
                "must be at most 86400 (one day)",
            ),
        };
        p.min_gap_ms = secs(&c.min_gap_secs, "min_gap_secs", p.min_gap_ms / 1000)?;
        p.max_gap_ms = secs(&c.max_gap_secs, "max_gap_secs", p.max_gap_ms / 1000)?;
        if c.max_gap_secs.is_none() && p.max_gap_ms < p.min_gap_ms {
            p.max_gap_ms = p.min_gap_ms;
        }
        if p.max_gap_ms < p.min_gap_ms {
            return self.err(
                c.max_gap_secs.as_ref().map(Spanned::span),
                format!("{key}.max_gap_secs"),
                "must be at least min_gap_secs",
            );
        }
        if let Some(n) = &c.pause_every {
            p.pause_every = *n.get_ref();
        }
        p.pause_ms = secs(&c.pause_secs, "pause_secs", p.pause_ms / 1000)?;
        Ok(p)
    }

    fn window(
        &self,
        c: &RawCampaign,
        key: &str,
        tz: &str,
    ) -> Result<Option<SendWindow>, ConfigError> {
        if c.window.is_none() && c.days.is_none() {
            return Ok(None);
        }
        let (start_min, end_min) = match &c.window {
            None => (0, 24 * 60),
            Some(w) => SendWindow::parse_hours(w.get_ref())
                .or_else(|m| self.err(Some(w.span()), format!("{key}.window"), m))?,
        };
        let days = match &c.days {
            None => 0x7f,
            Some(list) => {
                let mut bits = 0u8;
                for (j, d) in list.get_ref().iter().enumerate() {
                    bits |= SendWindow::day_bit(d.get_ref()).map_or_else(
                        || {
                            self.err(
                                Some(d.span()),
                                format!("{key}.days[{j}]"),
                                format!(
                                    "{:?} is not a weekday; use mon, tue, wed, thu, fri, sat, sun",
                                    d.get_ref()
                                ),
                            )
                        },
                        Ok,
                    )?;
                }
                if bits == 0 {
                    return self.err(
                        Some(list.span()),
                        format!("{key}.days"),
                        "is empty: the campaign could never send",
                    );
                }
                bits
            }
        };
        Ok(Some(SendWindow {
            start_min,
            end_min,
            days,
            tz: tz.parse().expect("validated with the schedule"),
        }))
    }
}

/// Reads a recipient CSV: a header row naming the columns (one of them `phone`), then one
/// recipient per row. Fields may be double-quoted (`""` is a quote inside). Blank lines and lines
/// starting with `#` are skipped. Errors name the file and line.
fn read_csv(path: &Path, text: &str, vars: &[&str]) -> Result<Vec<Recipient>, ConfigError> {
    let err = |line: usize, message: String| ConfigError {
        file: path.to_owned(),
        line: Some(line),
        column: None,
        key: String::new(),
        message,
    };
    let mut rows = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let Some((hline, header)) = rows.next() else {
        return Err(err(
            1,
            "the recipient file is empty: it needs a header row such as \"phone,name\"".into(),
        ));
    };
    let header = split_csv(header).map_err(|m| err(hline, m))?;
    let header: Vec<String> = header.into_iter().map(|h| h.trim().to_string()).collect();
    let Some(phone_col) = header.iter().position(|h| h == "phone") else {
        return Err(err(
            hline,
            format!("the header row {header:?} has no \"phone\" column"),
        ));
    };
    if let Some(v) = vars
        .iter()
        .find(|v| **v != "phone" && !header.iter().any(|h| h == *v))
    {
        return Err(err(
            hline,
            format!("the text uses {{{v}}} but the file has no {v:?} column"),
        ));
    }
    let mut seen = BTreeMap::new();
    let mut out = Vec::new();
    for (line, row) in rows {
        let fields = split_csv(row).map_err(|m| err(line, m))?;
        if fields.len() != header.len() {
            return Err(err(
                line,
                format!(
                    "has {} fields, the header has {}",
                    fields.len(),
                    header.len()
                ),
            ));
        }
        let mut map = BTreeMap::new();
        for (h, f) in header.iter().zip(&fields) {
            if h != "phone" {
                map.insert(h.clone(), f.trim().to_string());
            }
        }
        let r = Recipient::new(&fields[phone_col], map).map_err(|m| err(line, m))?;
        if let Some(prev) = seen.insert(r.phone.clone(), line) {
            return Err(err(line, format!("{} is already on line {prev}", r.phone)));
        }
        out.push(r);
    }
    Ok(out)
}

fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.trim().is_empty() && !was_quoted => {
                field.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, '"') => {
                return Err("a quote inside an unquoted field; quote the whole field".into());
            }
            (false, ',') => {
                out.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    out.push(field);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const SESSION: &str = "[[session]]\nname = \"main\"\n";

    fn parse(campaign: &str) -> Result<Config, ConfigError> {
        Config::parse(
            Path::new("/etc/wasmeow/bot.toml"),
            &format!("{SESSION}\n[[campaign]]\n{campaign}"),
        )
    }

    fn err(campaign: &str) -> String {
        parse(campaign).expect_err("must be rejected").to_string()
    }

    const OK: &str = r#"name = "news"
session = "main"
schedule = "0 9 * * MON"
timezone = "Europe/Berlin"
text = "Hi {name}!"
recipients = [{ phone = "+49 151 0000001", name = "Ana" }, { phone = "4915100000002", name = "Bo" }]
"#;

    #[test]
    fn a_campaign_resolves_with_safe_defaults() {
        let cfg = parse(OK).unwrap();
        let c = &cfg.campaigns[0];
        assert_eq!((c.name.as_str(), c.session.as_str()), ("news", "main"));
        assert_eq!(c.plan.recipients[0].phone, "491510000001");
        assert_eq!(
            c.plan.template.render(&c.plan.recipients[1].vars).unwrap(),
            "Hi Bo!"
        );
        assert_eq!(c.plan.pacing, Pacing::default());
        assert_eq!(c.plan.window, None);
        assert_eq!(c.plan.catch_up_ms, 3_600_000);
        assert_eq!(c.opt_out, vec!["STOP"]);
        assert!(c.enabled);
        let windowed = parse(&format!(
            "{OK}window = \"09:00-18:00\"\ndays = [\"mon\", \"Friday\"]\nmin_gap_secs = 5\nmax_gap_secs = 9\npause_every = 0\n"
        ))
        .unwrap();
        let c = &windowed.campaigns[0];
        let w = c.plan.window.unwrap();
        assert_eq!((w.start_min, w.end_min, w.days), (540, 1080, 0b10001));
        assert_eq!(w.tz.name(), "Europe/Berlin");
        assert_eq!(
            (
                c.plan.pacing.min_gap_ms,
                c.plan.pacing.max_gap_ms,
                c.plan.pacing.pause_every
            ),
            (5000, 9000, 0)
        );
    }

    #[test]
    fn campaign_errors_name_the_key_and_line() {
        let e = err(&OK.replace("session = \"main\"", "session = \"other\""));
        assert!(
            e.contains(":6:11: `campaign[0].session`: no [[session]] is named \"other\""),
            "{e}"
        );
        let e = err(&OK.replace("0 9 * * MON", "0 9 * *"));
        assert!(
            e.contains("`campaign[0].schedule`: invalid cron expression"),
            "{e}"
        );
        let e = err(&OK.replace("Europe/Berlin", "Mars/Olympus"));
        assert!(
            e.contains(":8:12: `campaign[0].schedule`: unknown time zone"),
            "{e}"
        );
        let e = err(&OK.replace("Hi {name}!", "Hi {name}, {city}"));
        assert!(
            e.contains("`campaign[0].recipients[0]`: has no \"city\""),
            "{e}"
        );
        let e = err(&OK.replace("Hi {name}!", "Hi {name"));
        assert!(e.contains("`campaign[0].text`: unclosed"), "{e}");
        let e = err(&OK.replace("4915100000002", "+49 151 0000001"));
        assert!(e.contains("is already recipient[0]"), "{e}");
        let e = err(&OK.replace("+49 151 0000001", "0151 0000001"));
        assert!(
            e.contains("`campaign[0].recipients[0].phone`: \"0151 0000001\" starts with 0"),
            "{e}"
        );
        let e = err(&format!("{OK}recipients_file = \"x.csv\"\n"));
        assert!(e.contains("either recipients or recipients_file"), "{e}");
        let e = err(&format!("{OK}window = \"18:00-09:00\"\n"));
        assert!(e.contains("`campaign[0].window`: the window"), "{e}");
        let e = err(&format!("{OK}days = [\"mon\", \"funday\"]\n"));
        assert!(
            e.contains("`campaign[0].days[1]`: \"funday\" is not a weekday"),
            "{e}"
        );
        let e = err(&format!("{OK}min_gap_secs = 30\nmax_gap_secs = 10\n"));
        assert!(
            e.contains("`campaign[0].max_gap_secs`: must be at least min_gap_secs"),
            "{e}"
        );
        let e = err(&format!("{OK}colour = \"red\"\n"));
        assert!(e.contains("unknown field `colour`"), "{e}");
        let e = err(&format!("{OK}\n[[campaign]]\n{OK}"));
        assert!(
            e.contains("`campaign[1].name`: \"news\" is already used by campaign[0]"),
            "{e}"
        );
        let e = err(&format!("{OK}opt_out_reply = \" \"\n"));
        assert!(e.contains("`campaign[0].opt_out_reply`: is empty"), "{e}");
    }

    #[test]
    fn recipients_come_from_a_csv_file_next_to_bot_toml() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("list.csv"),
            "phone,name\n+4915100000001,Ana\n4915100000002,Bo\n",
        )
        .unwrap();
        let text = format!(
            "{SESSION}\n[[campaign]]\nname = \"n\"\nsession = \"main\"\nschedule = \"@daily\"\ntext = \"Hi {{name}}\"\nrecipients_file = \"list.csv\"\n"
        );
        let cfg = Config::parse(&dir.path().join("bot.toml"), &text).unwrap();
        assert_eq!(cfg.campaigns[0].plan.recipients.len(), 2);
        std::fs::write(dir.path().join("list.csv"), "phone\n4915100000001\n").unwrap();
        let e = Config::parse(&dir.path().join("bot.toml"), &text).unwrap_err();
        assert_eq!(e.file, dir.path().join("list.csv"));
        assert!(e.message.contains("no \"name\" column"), "{e}");
        let mut big = String::from("phone,name\n");
        for i in 0..=MAX_RECIPIENTS {
            big.push_str(&format!("49151{i:08},n\n"));
        }
        std::fs::write(dir.path().join("list.csv"), big).unwrap();
        let e = Config::parse(&dir.path().join("bot.toml"), &text).unwrap_err();
        assert!(e.message.contains("at most 100000"), "{e}");
        let e = Config::parse(
            &dir.path().join("bot.toml"),
            &text.replace("list.csv", "gone.csv"),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("`campaign[0].recipients_file`: cannot read"),
            "{e}"
        );
    }

    #[test]
    fn csv_fields_split_with_quotes() {
        assert_eq!(split_csv("a,b ,\"c,d\"").unwrap(), vec!["a", "b ", "c,d"]);
        assert_eq!(
            split_csv("\"say \"\"hi\"\"\",x").unwrap(),
            vec!["say \"hi\"", "x"]
        );
        assert_eq!(split_csv("").unwrap(), vec![""]);
        assert!(split_csv("\"open").is_err());
        assert!(split_csv("ab\"c").is_err());
    }

    #[test]
    fn csv_recipients_are_checked_against_the_template() {
        let p = Path::new("list.csv");
        let r = read_csv(
            p,
            "# customers\nphone,name\n+49 151 0000001,Ana\n\n4915100000002,\"Bo, Jr\"\n",
            &["name"],
        )
        .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].vars["name"], "Bo, Jr");
        let e = read_csv(p, "phone,name\n4915100000001,Ana\n", &["name", "city"]).unwrap_err();
        assert_eq!(e.line, Some(1));
        assert!(e.message.contains("no \"city\" column"), "{e}");
        let e = read_csv(p, "phone,name\n4915100000001,Ana\n4915100000001,Bo\n", &[]).unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("already on line 2"), "{e}");
        let e = read_csv(p, "phone,name\n12,Ana\n", &[]).unwrap_err();
        assert_eq!(e.line, Some(2));
        let e = read_csv(p, "phone,name\n4915100000001\n", &[]).unwrap_err();
        assert!(e.message.contains("1 fields"), "{e}");
        let e = read_csv(p, "name\nAna\n", &[]).unwrap_err();
        assert!(e.message.contains("no \"phone\" column"), "{e}");
    }
}
