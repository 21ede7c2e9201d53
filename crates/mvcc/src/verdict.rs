//! Whether a check found problems: the one outcome every checking call
//! reduces to (the CLI's exit codes 0 and 1).

/// What a check concluded about a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing wrong was found (warnings aside).
    Clean,
    /// The file is damaged or breaks an invariant etcd relies on.
    Problems,
}

impl Verdict {
    /// `Clean` when `ok`, else `Problems`.
    pub fn from_ok(ok: bool) -> Self {
        if ok {
            Self::Clean
        } else {
            Self::Problems
        }
    }

    /// Whether nothing wrong was found.
    pub fn is_clean(self) -> bool {
        self == Self::Clean
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    #[test]
    fn from_ok() {
        assert_eq!(Verdict::from_ok(true), Verdict::Clean);
        assert_eq!(Verdict::from_ok(false), Verdict::Problems);
        assert!(Verdict::Clean.is_clean() && !Verdict::Problems.is_clean());
    }
}
