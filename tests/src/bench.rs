//! Pieces the benchmarks share: results go into marked sections of docs/benchmarks.md, and the
//! process may need more file descriptors than the default soft limit.

use crate::repo_root;

/// Replace the `<!-- NAME-bench:start -->` … `<!-- NAME-bench:end -->` section of
/// docs/benchmarks.md with `section` (which carries those markers), or append it.
pub fn write_section(name: &str, section: &str) -> anyhow::Result<()> {
    let path = repo_root().join("docs/benchmarks.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    std::fs::write(path, replace_section(&doc, name, section))?;
    Ok(())
}

fn replace_section(doc: &str, name: &str, section: &str) -> String {
    let (start, end) = (
        format!("<!-- {name}-bench:start -->"),
        format!("<!-- {name}-bench:end -->"),
    );
    match (doc.find(&start), doc.find(&end)) {
        (Some(a), Some(b)) if b > a => {
            let mut stop = b + end.len();
            if doc[stop..].starts_with('\n') {
                stop += 1;
            }
            format!("{}{}{}", &doc[..a], section, &doc[stop..])
        }
        _ => format!("{}\n\n{}", doc.trim_end(), section),
    }
}

/// Raise the soft open-file limit to the hard limit: a benchmark holds both ends of thousands
/// of connections (clients and the in-process apiserver) in one process.
pub fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit on our own process with a valid struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::replace_section;

    #[test]
    fn sections_are_replaced_in_place_or_appended() {
        let doc = "# B\n\n<!-- a-bench:start -->\nold\n<!-- a-bench:end -->\n\ntail\n";
        let new = "<!-- a-bench:start -->\nnew\n<!-- a-bench:end -->\n";
        assert_eq!(
            replace_section(doc, "a", new),
            "# B\n\n<!-- a-bench:start -->\nnew\n<!-- a-bench:end -->\n\ntail\n"
        );
        let other = "<!-- b-bench:start -->\nb\n<!-- b-bench:end -->\n";
        assert_eq!(
            replace_section("# B\n", "b", other),
            format!("# B\n\n{other}")
        );
    }
}
