//! A small matcher for the common part of Go's regexp (RE2) syntax, for
//! configuration files written for the Go plugins (tuning's sysctl
//! allow-list). `is_match` is Go's `regexp.MatchString`: unanchored, `^`
//! and `$` match only at the ends of the text, `.` does not match `\n`.
//!
//! Supported: literals, `.`, `[...]` / `[^...]` with ranges, `\d \w \s`
//! (and upper-case negations) in and out of classes, escaped punctuation,
//! `\n \t \r \f \v`, `\A \z`, groups `(...)` and `(?:...)`, `|`, and the
//! repetitions `* + ? {n} {n,} {n,m}` (lazy forms match the same). Anything
//! else (flags, `\b`, POSIX classes, back-references) is an error naming it,
//! never a silent mismatch. Matching is a Pike VM: linear in the text, no
//! backtracking blow-up whatever the pattern.

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Regex {
    prog: Vec<Inst>,
}

#[derive(Debug, Clone)]
enum Node {
    Char(char),
    Any,
    Class(Vec<(char, char)>, bool),
    Start,
    End,
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat(Box<Node>, u32, Option<u32>),
}

#[derive(Debug, Clone)]
enum Inst {
    Char(char),
    Any,
    Class(Vec<(char, char)>, bool),
    Start,
    End,
    Split(usize, usize),
    Jmp(usize),
    Match,
}

const MAX_REPEAT: u32 = 1000;
const MAX_PROG: usize = 100_000;

const DIGIT: &[(char, char)] = &[('0', '9')];
const WORD: &[(char, char)] = &[('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')];
const SPACE: &[(char, char)] = &[('\t', '\n'), ('\x0c', '\r'), (' ', ' ')];

/// Nesting limit (Go allows 1000; allow-lists need a few, and this keeps
/// the recursive parser far from the stack limit).
const MAX_DEPTH: usize = 100;

struct Parser {
    s: Vec<char>,
    i: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn alt(&mut self) -> Result<Node, String> {
        let mut alts = vec![self.concat()?];
        while self.eat('|') {
            alts.push(self.concat()?);
        }
        Ok(if alts.len() == 1 {
            alts.remove(0)
        } else {
            Node::Alt(alts)
        })
    }

    fn concat(&mut self) -> Result<Node, String> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            items.push(self.repeats(atom)?);
        }
        Ok(Node::Concat(items))
    }

    fn repeats(&mut self, atom: Node) -> Result<Node, String> {
        let Some((min, max)) = self.repeat_op()? else {
            return Ok(atom);
        };
        self.eat('?'); // lazy: same set of matches
        if self.repeat_op_ahead() {
            return Err("invalid nested repetition operator".into());
        }
        Ok(Node::Repeat(Box::new(atom), min, max))
    }

    fn repeat_op_ahead(&mut self) -> bool {
        let save = self.i;
        let found = matches!(self.repeat_op(), Ok(Some(_)));
        self.i = save;
        found
    }

    /// `*`, `+`, `?` or a valid `{n}`, `{n,}`, `{n,m}` (a `{` that does
    /// not start one is a literal, as in Go).
    fn repeat_op(&mut self) -> Result<Option<(u32, Option<u32>)>, String> {
        let op = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => {
                let rest: String = self.s[self.i + 1..].iter().collect();
                let Some(end) = rest.find('}') else {
                    return Ok(None);
                };
                let body = &rest[..end];
                let num = |t: &str| {
                    (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                        .then(|| t.parse::<u32>().unwrap_or(u32::MAX))
                };
                let (min, max) = match body.split_once(',') {
                    None => match num(body) {
                        Some(n) => (n, Some(n)),
                        None => return Ok(None),
                    },
                    Some((a, "")) => match num(a) {
                        Some(n) => (n, None),
                        None => return Ok(None),
                    },
                    Some((a, b)) => match (num(a), num(b)) {
                        (Some(a), Some(b)) => (a, Some(b)),
                        _ => return Ok(None),
                    },
                };
                if min > MAX_REPEAT || max.is_some_and(|m| m > MAX_REPEAT || m < min) {
                    return Err(format!("invalid repeat count {{{body}}}"));
                }
                self.i += body.chars().count() + 1;
                (min, max)
            }
            _ => return Ok(None),
        };
        self.i += 1;
        Ok(Some(op))
    }

    fn atom(&mut self) -> Result<Node, String> {
        let c = self.peek().ok_or("unexpected end")?;
        self.i += 1;
        Ok(match c {
            '(' => {
                if self.eat('?') && !self.eat(':') {
                    return Err("unsupported group flags (?".into());
                }
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err("expression nests too deeply".into());
                }
                let inner = self.alt()?;
                self.depth -= 1;
                if !self.eat(')') {
                    return Err("missing closing )".into());
                }
                inner
            }
            ')' => return Err("unexpected )".into()),
            '*' | '+' | '?' => return Err(format!("missing argument to repetition operator {c}")),
            '.' => Node::Any,
            '^' => Node::Start,
            '$' => Node::End,
            '[' => self.class()?,
            '\\' => match self.escape()? {
                Esc::Char(c) => Node::Char(c),
                Esc::Class(r, neg) => Node::Class(r.to_vec(), neg),
                Esc::Start => Node::Start,
                Esc::End => Node::End,
            },
            c => Node::Char(c),
        })
    }

    fn escape(&mut self) -> Result<Esc, String> {
        let c = self
            .peek()
            .ok_or("trailing backslash at end of expression")?;
        self.i += 1;
        Ok(match c {
            'd' | 'D' => Esc::Class(DIGIT, c == 'D'),
            'w' | 'W' => Esc::Class(WORD, c == 'W'),
            's' | 'S' => Esc::Class(SPACE, c == 'S'),
            'A' => Esc::Start,
            'z' => Esc::End,
            'n' => Esc::Char('\n'),
            't' => Esc::Char('\t'),
            'r' => Esc::Char('\r'),
            'f' => Esc::Char('\x0c'),
            'v' => Esc::Char('\x0b'),
            c if c.is_ascii_punctuation() => Esc::Char(c),
            c => return Err(format!("unsupported escape sequence \\{c}")),
        })
    }

    fn class(&mut self) -> Result<Node, String> {
        let neg = self.eat('^');
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            let c = self.peek().ok_or("missing closing ]")?;
            self.i += 1;
            if c == ']' && !first {
                break;
            }
            first = false;
            let lo = match c {
                '[' if self.peek() == Some(':') => {
                    return Err("unsupported POSIX character class".into())
                }
                '\\' => match self.escape()? {
                    Esc::Char(c) => c,
                    Esc::Class(r, false) => {
                        ranges.extend_from_slice(r);
                        continue;
                    }
                    _ => return Err("unsupported escape in character class".into()),
                },
                c => c,
            };
            let mut hi = lo;
            if self.peek() == Some('-') && self.s.get(self.i + 1).is_some_and(|&n| n != ']') {
                self.i += 1;
                let c = self.peek().ok_or("missing closing ]")?;
                self.i += 1;
                hi = match c {
                    '\\' => match self.escape()? {
                        Esc::Char(c) => c,
                        _ => return Err("invalid character class range".into()),
                    },
                    c => c,
                };
                if hi < lo {
                    return Err(format!("invalid character class range {lo}-{hi}"));
                }
            }
            ranges.push((lo, hi));
        }
        Ok(Node::Class(ranges, neg))
    }
}

enum Esc {
    Char(char),
    Class(&'static [(char, char)], bool),
    Start,
    End,
}

fn emit(node: &Node, prog: &mut Vec<Inst>) -> Result<(), String> {
    if prog.len() > MAX_PROG {
        return Err("expression too large".into());
    }
    match node {
        Node::Char(c) => prog.push(Inst::Char(*c)),
        Node::Any => prog.push(Inst::Any),
        Node::Class(r, n) => prog.push(Inst::Class(r.clone(), *n)),
        Node::Start => prog.push(Inst::Start),
        Node::End => prog.push(Inst::End),
        Node::Concat(items) => {
            for n in items {
                emit(n, prog)?;
            }
        }
        Node::Alt(alts) => {
            let mut jumps = Vec::new();
            for (k, a) in alts.iter().enumerate() {
                if k + 1 < alts.len() {
                    let split = prog.len();
                    prog.push(Inst::Split(split + 1, 0));
                    emit(a, prog)?;
                    jumps.push(prog.len());
                    prog.push(Inst::Jmp(0));
                    let next = prog.len();
                    prog[split] = Inst::Split(split + 1, next);
                } else {
                    emit(a, prog)?;
                }
            }
            let end = prog.len();
            for j in jumps {
                prog[j] = Inst::Jmp(end);
            }
        }
        Node::Repeat(n, min, max) => {
            for _ in 0..*min {
                emit(n, prog)?;
            }
            match max {
                None => {
                    let split = prog.len();
                    prog.push(Inst::Split(split + 1, 0));
                    emit(n, prog)?;
                    prog.push(Inst::Jmp(split));
                    prog[split] = Inst::Split(split + 1, prog.len());
                }
                Some(max) => {
                    let mut splits = Vec::new();
                    for _ in *min..*max {
                        splits.push(prog.len());
                        prog.push(Inst::Split(0, 0));
                        emit(n, prog)?;
                    }
                    let end = prog.len();
                    for s in splits {
                        prog[s] = Inst::Split(s + 1, end);
                    }
                }
            }
        }
    }
    Ok(())
}

impl Regex {
    pub fn new(pattern: &str) -> Result<Regex, String> {
        let mut p = Parser {
            s: pattern.chars().collect(),
            i: 0,
            depth: 0,
        };
        let node = p.alt()?;
        if p.i != p.s.len() {
            return Err("unexpected )".into());
        }
        let mut prog = Vec::new();
        emit(&node, &mut prog)?;
        prog.push(Inst::Match);
        Ok(Regex { prog })
    }

    /// Does the pattern match anywhere in `text`?
    pub fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let n = self.prog.len();
        let mut clist: Vec<usize> = Vec::new();
        let mut seen = vec![usize::MAX; n];
        for pos in 0..=chars.len() {
            // Unanchored: a new thread starts at every position.
            if self.add(&mut clist, &mut seen, 0, pos, chars.len()) {
                return true;
            }
            let Some(&c) = chars.get(pos) else { break };
            let mut nlist = Vec::new();
            for &pc in &clist {
                let ok = match &self.prog[pc] {
                    Inst::Char(want) => *want == c,
                    Inst::Any => c != '\n',
                    Inst::Class(r, neg) => r.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *neg,
                    _ => false,
                };
                if ok && self.add(&mut nlist, &mut seen, pc + 1, pos + 1, chars.len()) {
                    return true;
                }
            }
            clist = nlist;
        }
        false
    }

    /// Add the thread at `pc` and everything reachable without consuming
    /// input; true if that reaches `Match`.
    fn add(
        &self,
        list: &mut Vec<usize>,
        seen: &mut [usize],
        pc: usize,
        pos: usize,
        len: usize,
    ) -> bool {
        let mut stack = vec![pc];
        while let Some(pc) = stack.pop() {
            if seen[pc] == pos {
                continue;
            }
            seen[pc] = pos;
            match &self.prog[pc] {
                Inst::Match => return true,
                Inst::Jmp(t) => stack.push(*t),
                Inst::Split(a, b) => {
                    stack.push(*b);
                    stack.push(*a);
                }
                Inst::Start if pos == 0 => stack.push(pc + 1),
                Inst::End if pos == len => stack.push(pc + 1),
                Inst::Start | Inst::End => {}
                _ => list.push(pc),
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        Regex::new(p).unwrap().is_match(t)
    }

    #[test]
    fn unanchored_like_go_match_string() {
        assert!(m("net.core.somaxconn", "net.core.somaxconn"));
        assert!(m("somax", "net.core.somaxconn"));
        assert!(m(
            "^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]+$",
            "net.ipv4.conf.IFNAME.arp_notify"
        ));
        assert!(!m(
            "^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]+$",
            "net.ipv4.conf.IFNAME.arp_notify2"
        ));
        assert!(!m("^net\\.core", "x.net.core"));
        assert!(m("core$", "net.core"));
        assert!(!m("core$", "net.core.x"));
        assert!(m("a.c", "abc") && !m("a.c", "a\nc"));
        assert!(m("(ipv4|ipv6)\\.conf", "net.ipv6.conf.all"));
        assert!(m("^(?:a|bc)+$", "abcbca") && !m("^(?:a|bc)+$", "abcb"));
        assert!(m("^a{2,3}$", "aaa") && !m("^a{2,3}$", "aaaa") && !m("^a{2}$", "a"));
        assert!(m("^a{2,}$", "aaaaa") && m("x{", "x{"));
        assert!(m("^[^.]+$", "abc") && !m("^[^.]+$", "a.c"));
        assert!(m("^\\d+\\s\\w$", "12 z") && m("^[\\d-]+$", "1-2"));
        assert!(m("", "anything") && m("^$", ""));
        assert!(m("a*?b", "aab"));
    }

    #[test]
    fn unsupported_or_invalid_is_an_error() {
        for bad in [
            "(?i)net",
            "\\bnet",
            "[[:alpha:]]",
            "a**",
            "*a",
            "(a",
            "a)",
            "[a",
            "\\1",
            "[z-a]",
            "a{1001}",
        ] {
            assert!(Regex::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_and_junk_never_panics() {
        assert!(Regex::new(&"(".repeat(100_000)).is_err());
        assert!(Regex::new(&format!("{}a{}", "(".repeat(100), ")".repeat(100))).is_ok());
        // A cheap deterministic fuzz over the syntax characters.
        let alphabet: Vec<char> = "ab.^$|()[]{}*+?\\-,:0123dwsz\n".chars().collect();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            let mut p = String::new();
            for _ in 0..(x % 12) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                p.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            if let Ok(r) = Regex::new(&p) {
                let _ = r.is_match("ab\nz.0-");
            }
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
    }

    #[test]
    fn no_blowup_on_nested_repetition() {
        let r = Regex::new("^(a+)+$").unwrap();
        let text = format!("{}b", "a".repeat(5000));
        assert!(!r.is_match(&text));
    }
}
