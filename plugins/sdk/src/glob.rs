//! Why this file exists: configs name addresses with simple wildcards ("*@example.com");
//! this is the one matcher every plugin uses, so they all agree on what a pattern means.

/// Case-insensitive wildcard match of the whole `text`: `*` matches any run of characters
/// (including none), `?` exactly one character. No other character is special.
pub fn matches_glob(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().flat_map(char::to_lowercase).collect();
    let text: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();

    // Classic greedy matcher: remember the last `*` and backtrack to it on a mismatch.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None; // (pattern index after '*', text index)
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p + 1, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            // Let the last `*` swallow one more character and retry.
            p = star_p;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches_glob;

    #[test]
    fn globs() {
        assert!(matches_glob("*@example.com", "Alice@EXAMPLE.com"));
        assert!(!matches_glob("*@example.com", "alice@example.com.evil.net"));
        assert!(!matches_glob("*@example.com", "alice@sub.example.org"));
        assert!(matches_glob("*@*.example.com", "a@mail.example.com"));
        assert!(matches_glob("owner-*", "owner-rust@lists.example.org"));
        assert!(matches_glob("a?c", "abc"));
        assert!(!matches_glob("a?c", "ac"));
        assert!(matches_glob("*", ""));
        assert!(matches_glob("", ""));
        assert!(!matches_glob("", "x"));
        assert!(matches_glob("exact@example.com", "exact@example.com"));
        assert!(matches_glob("**a*b", "xxaxxb"));
        assert!(!matches_glob("*a*b", "xxaxxbx"));
    }
}
