//! Chat commands of the form `!name args…`.

/// A command parsed from message text: `!remind 10m tea` is `name = "remind"`,
/// `args = "10m tea"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command<'a> {
    /// The word after the prefix, as written.
    pub name: &'a str,
    /// Everything after the name, trimmed.
    pub args: &'a str,
}

impl<'a> Command<'a> {
    /// Parses `text` as a `!command` (leading whitespace allowed). `None` when the
    /// text does not start with `!` followed by a name.
    pub fn parse(text: &'a str) -> Option<Self> {
        Self::parse_with(text, '!')
    }

    /// Like [`Command::parse`] with another prefix character.
    pub fn parse_with(text: &'a str, prefix: char) -> Option<Self> {
        let rest = text.trim_start().strip_prefix(prefix)?;
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (name, args) = rest.split_at(end);
        if name.is_empty() {
            return None;
        }
        Some(Command {
            name,
            args: args.trim(),
        })
    }

    /// Whether the command's name is `name`, ignoring ASCII case.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// The arguments split on whitespace.
    pub fn argv(&self) -> impl Iterator<Item = &'a str> {
        self.args.split_whitespace()
    }

    /// The first argument and the rest of the arguments (trimmed).
    pub fn split_first(&self) -> Option<(&'a str, &'a str)> {
        let args = self.args;
        if args.is_empty() {
            return None;
        }
        let end = args.find(char::is_whitespace).unwrap_or(args.len());
        let (first, rest) = args.split_at(end);
        Some((first, rest.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::Command;

    #[test]
    fn parses_name_and_args() {
        let c = Command::parse("  !remind 10m  make tea ").unwrap();
        assert_eq!(c.name, "remind");
        assert_eq!(c.args, "10m  make tea");
        assert_eq!(c.split_first(), Some(("10m", "make tea")));
        assert_eq!(c.argv().collect::<Vec<_>>(), ["10m", "make", "tea"]);
        assert!(c.is("REMIND"));
    }

    #[test]
    fn rejects_non_commands() {
        assert_eq!(Command::parse("hello !ping"), None);
        assert_eq!(Command::parse("!"), None);
        assert_eq!(Command::parse("! ping"), None);
        assert_eq!(Command::parse("!ping").unwrap().args, "");
        assert_eq!(Command::parse("!ping").unwrap().split_first(), None);
    }
}
