//! Static bearer tokens from a CSV file, as kube-apiserver's `--token-auth-file`:
//! `token,user,uid[,"group1,group2"]`, one per line (blank lines and `#` comments skipped).

use std::collections::HashMap;
use std::path::Path;

use crate::auth::user::UserInfo;

#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} line {line}: {why}")]
    Line {
        path: String,
        line: usize,
        why: &'static str,
    },
}

#[derive(Debug, Default)]
pub struct TokenFile {
    users: HashMap<String, UserInfo>,
}

impl TokenFile {
    pub fn load(path: &Path) -> Result<TokenFile, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        TokenFile::parse(&text).map_err(|(line, why)| TokenFileError::Line {
            path: path.display().to_string(),
            line,
            why,
        })
    }

    pub fn parse(text: &str) -> Result<TokenFile, (usize, &'static str)> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line);
            if fields.len() < 3 {
                return Err((i + 1, "expected token,user,uid[,\"groups\"]"));
            }
            if fields[0].is_empty() || fields[1].is_empty() {
                return Err((i + 1, "the token and the user name must not be empty"));
            }
            let groups = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let mut user = UserInfo::new(fields[1].clone(), groups);
            user.uid = fields[2].clone();
            users.insert(fields[0].clone(), user.authenticated());
        }
        Ok(TokenFile { users })
    }

    pub fn user(&self, token: &str) -> Option<&UserInfo> {
        self.users.get(token)
    }
}

/// Split one CSV line: commas separate fields except inside double quotes; `""` is a quote.
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    fields.push(field);
    fields.into_iter().map(|f| f.trim().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_a_quoted_list() {
        let file =
            TokenFile::parse("# comment\nt1,alice,1001,\"dev,ops\"\n\nt2,bob,1002\n").unwrap();
        let alice = file.user("t1").unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.uid, "1001");
        assert_eq!(alice.groups, ["dev", "ops", "system:authenticated"]);
        assert_eq!(file.user("t2").unwrap().groups, ["system:authenticated"]);
        assert!(file.user("t3").is_none());
    }

    #[test]
    fn a_short_line_is_refused_with_its_number() {
        assert_eq!(TokenFile::parse("t1,alice,1\nbad").unwrap_err().0, 2);
    }
}
