//! The busybox image the tests and `make up`'s demo run: one layer made from a static busybox
//! binary (Debian's busybox-static), `bin/busybox` plus links for common applets, a passwd
//! and group file and a `/www/index.html` for httpd. It lives in the agent (not only in the
//! test kit, which builds its fixtures with it) because `make up` builds it with the agent's
//! `build-busybox-image` subcommand.

use std::path::Path;

use anyhow::Context;

use super::layout::write_single_layer_layout;

/// Build the busybox image `name` from the binary at `busybox` as an OCI layout tarball at `out`.
pub fn build_busybox_layout(busybox: &Path, out: &Path, name: &str) -> anyhow::Result<()> {
    let binary =
        std::fs::read(busybox).with_context(|| format!("reading {}", busybox.display()))?;
    let layer = busybox_layer(&binary)?;
    let process = serde_json::json!({
        "Env": ["PATH=/bin"],
        "Entrypoint": ["/bin/sh", "-c"],
        "Cmd": ["echo hello from busybox"],
        "WorkingDir": "/",
    });
    write_single_layer_layout(out, name, &layer, process)
}

/// The layer, as an uncompressed tar.
fn busybox_layer(binary: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut layer = tar::Builder::new(Vec::new());
    let dir = |path: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_path(path).unwrap();
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(0);
        h.set_cksum();
        h
    };
    for d in [
        "bin/", "etc/", "tmp/", "proc/", "sys/", "dev/", "var/", "www/",
    ] {
        layer.append(&dir(d), std::io::empty())?;
    }
    let mut h = tar::Header::new_gnu();
    h.set_path("bin/busybox")?;
    h.set_mode(0o755);
    h.set_size(binary.len() as u64);
    h.set_mtime(0);
    h.set_cksum();
    layer.append(&h, binary)?;
    for applet in [
        "sh", "echo", "httpd", "sleep", "hostname", "cat", "wget", "mkdir", "ls", "env", "true",
        "false", "id", "nc", "ps", "kill", "test", "grep",
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_path(format!("bin/{applet}"))?;
        h.set_link_name("busybox")?;
        h.set_mode(0o777);
        h.set_size(0);
        h.set_mtime(0);
        h.set_cksum();
        layer.append(&h, std::io::empty())?;
    }
    for (path, content) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        ("www/index.html", "hello from skiff\n"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_path(path)?;
        h.set_mode(0o644);
        h.set_size(content.len() as u64);
        h.set_mtime(0);
        h.set_cksum();
        layer.append(&h, content.as_bytes())?;
    }
    layer.into_inner()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Read;

    use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

    use super::*;
    use crate::images::sha256_digest;

    #[test]
    fn busybox_layout_is_a_valid_oci_layout() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("busybox");
        std::fs::write(&fake, b"not really busybox").unwrap();
        let out = dir.path().join("img.tar");
        build_busybox_layout(&fake, &out, "skiff.test/busybox:latest").unwrap();
        let mut archive = tar::Archive::new(std::fs::File::open(&out).unwrap());
        let mut files = BTreeMap::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let p = e.path().unwrap().to_string_lossy().to_string();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            files.insert(p, data);
        }
        let index: ImageIndex = serde_json::from_slice(&files["index.json"]).unwrap();
        let m = &index.manifests()[0];
        let blob = |d: &str| &files[&format!("blobs/sha256/{}", d.trim_start_matches("sha256:"))];
        let manifest_bytes = blob(m.digest().as_ref());
        assert_eq!(&sha256_digest(manifest_bytes), m.digest().as_ref() as &str);
        let manifest: ImageManifest = serde_json::from_slice(manifest_bytes).unwrap();
        let config: ImageConfiguration =
            serde_json::from_slice(blob(manifest.config().digest().as_ref())).unwrap();
        let layer = blob(manifest.layers()[0].digest().as_ref());
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(layer.as_slice())
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(sha256_digest(&raw), config.rootfs().diff_ids()[0]);
    }
}
