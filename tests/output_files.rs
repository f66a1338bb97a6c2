//! Issue 11: the files synack writes. Under sudo they are opened as the
//! user who ran sudo (a planted link or a root file is refused, exit 2, the
//! target untouched); as plain root a link someone else could plant is not
//! followed; two spellings of one file are a usage error; a failed stdout
//! or a failed capture file gives one sentence that names what failed.
//!
//! Root tests: `sudo` is played by setting SUDO_UID/SUDO_GID to nobody
//! (65534), in directories laid out so that nobody can write only where
//! the test says.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const NOBODY: u32 = 65534;

fn synack() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_synack"));
    for var in ["SUDO_UID", "SUDO_GID", "SUDO_USER", "SUDO_COMMAND"] {
        cmd.env_remove(var);
    }
    cmd
}

/// `synack` as run by `sudo` for nobody.
fn synack_for_nobody() -> Command {
    let mut cmd = synack();
    cmd.env("SUDO_UID", NOBODY.to_string())
        .env("SUDO_GID", NOBODY.to_string());
    cmd
}

fn lab(mut cmd: Command, args: &[&str]) -> Output {
    cmd.args(["-q", "lab", "--time-wait", "0"])
        .args(args)
        .output()
        .expect("running synack lab")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

/// A temp dir anyone may enter (a tempdir is 0700, which would stop nobody
/// before any of the rules under test), with a root-only secret in it and
/// a home that belongs to nobody.
struct Layout {
    _dir: tempfile::TempDir,
    secret: PathBuf,
    home: PathBuf,
}

const SECRET: &[u8] = b"root's secret\n";

fn layout() -> Layout {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let secret = dir.path().join("secret");
    fs::write(&secret, SECRET).unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
    let home = dir.path().join("home");
    fs::create_dir(&home).unwrap();
    nix::unistd::chown(&home, Some(NOBODY.into()), Some(NOBODY.into())).unwrap();
    Layout {
        _dir: dir,
        secret,
        home,
    }
}

fn assert_untouched(secret: &Path) {
    assert_eq!(fs::read(secret).unwrap(), SECRET, "the target was written");
    let meta = fs::metadata(secret).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "the target changed owner");
}

#[test]
fn under_sudo_a_planted_link_to_a_root_file_is_not_followed() {
    require_root!();
    let l = layout();
    // What the attacker does in a directory of their own.
    let evil = l.home.join("evil.pcap");
    symlink(&l.secret, &evil).unwrap();
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        &evil,
        Some(NOBODY.into()),
        Some(NOBODY.into()),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .unwrap();
    for extra in [
        vec!["-w", s(&evil)],
        vec!["-w", s(&l.home.join("ok.pcap")), "--mermaid", s(&evil)],
        vec!["-w", s(&l.home.join("ok.pcap")), "--server-side", s(&evil)],
    ] {
        let out = lab(synack_for_nobody(), &extra);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("may not write there"), "{err}");
        assert_eq!(err.matches("os error").count(), 1, "{err}");
        assert_untouched(&l.secret);
        // The run stopped before it began: no capture left behind.
        assert!(!l.home.join("ok.pcap").exists(), "{extra:?}");
    }
}

#[test]
fn under_sudo_a_root_file_is_refused_without_any_link() {
    require_root!();
    let l = layout();
    // `sudo synack lab -w /etc/shadow`, on a file of our own.
    let out = lab(synack_for_nobody(), &["-w", s(&l.secret)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_untouched(&l.secret);
}

#[test]
fn under_sudo_the_outputs_belong_to_the_caller_and_a_second_run_overwrites_them() {
    require_root!();
    let l = layout();
    let pcap = l.home.join("x.pcap");
    let server = l.home.join("server.pcap");
    let mermaid = l.home.join("run.mmd");
    let args = [
        "-w",
        s(&pcap),
        "--server-side",
        s(&server),
        "--mermaid",
        s(&mermaid),
    ];
    for run in 0..2 {
        let out = lab(synack_for_nobody(), &args);
        assert!(out.status.success(), "run {run}: {}", stderr(&out));
        for file in [&pcap, &server, &mermaid] {
            let meta = fs::metadata(file).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (NOBODY, NOBODY), "{file:?}");
            assert!(meta.len() > 24, "{file:?} is empty");
        }
    }
}

#[test]
fn as_root_a_link_in_a_world_writable_directory_is_refused() {
    require_root!();
    let l = layout();
    let shared = l.home.parent().unwrap().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    let evil = shared.join("evil.pcap");
    symlink(&l.secret, &evil).unwrap();
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        &evil,
        Some(NOBODY.into()),
        Some(NOBODY.into()),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .unwrap();
    let out = lab(synack(), &["-w", s(&evil)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert_untouched(&l.secret);
    // A link of nobody's in nobody's home: root does not follow it either.
    let theirs = l.home.join("theirs.pcap");
    symlink(&l.secret, &theirs).unwrap();
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        &theirs,
        Some(NOBODY.into()),
        Some(NOBODY.into()),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .unwrap();
    let out = lab(synack(), &["-w", s(&theirs)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_untouched(&l.secret);
}

#[test]
fn two_spellings_of_one_file_are_a_usage_error_and_the_capture_survives() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("x.pcap");
    fs::write(&pcap, b"an earlier capture").unwrap();
    let dotted = dir.path().join(".").join("x.pcap");
    for flag in ["--mermaid", "--server-side"] {
        let out = lab(synack(), &["-w", s(&pcap), flag, s(&dotted)]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("is also the file of -w"),
            "{}",
            stderr(&out)
        );
        assert_eq!(fs::read(&pcap).unwrap(), b"an earlier capture");
    }
    // Relative and absolute, from the directory itself.
    let out = synack()
        .current_dir(dir.path())
        .args(["lab", "-w", "x.pcap", "--mermaid"])
        .arg(&pcap)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(fs::read(&pcap).unwrap(), b"an earlier capture");
}

#[test]
fn a_failed_stdout_is_one_sentence_and_the_capture_is_whole() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("x.pcap");
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = synack()
        .args(["lab", "--time-wait", "0", "-w"])
        .arg(&pcap)
        .stdout(Stdio::from(full))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("writing the narration to stdout failed"),
        "{err}"
    );
    assert_eq!(err.matches("No space left on device").count(), 1, "{err}");
    // The whole exchange is in the capture, not a 24-byte header.
    let inspect = synack()
        .args(["inspect", "--summary"])
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    let summary = String::from_utf8_lossy(&inspect.stdout);
    assert!(fs::metadata(&pcap).unwrap().len() > 24);
    assert!(!summary.trim().is_empty(), "{summary}");
}

#[test]
fn a_capture_file_that_cannot_be_written_is_named_once() {
    require_root!();
    let out = lab(synack(), &["-w", "/dev/full"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("writing /dev/full"), "{err}");
    assert_eq!(err.matches("No space left on device").count(), 1, "{err}");
}
