//! Giving up what the server does not need once it listens: root (`--run-as`) and the rest of the file
//! system (Landlock).
//!
//! Both happen in `main` after the control port is bound and start-up files (`/etc/passwd`,
//! `/etc/group` for listings) are read, and **before the tokio runtime starts**. That order matters:
//! on Linux, uids, gids, supplementary groups and Landlock domains belong to a *thread*. The C
//! library's `setuid` hides that by signalling every thread; the raw system calls that rustix makes
//! (`set_thread_res_uid` and friends) change the calling thread only. While the process has exactly one
//! thread, the calling thread is the whole process, and every thread created later inherits its
//! credentials and Landlock domain. [`drop_to`] therefore checks `/proc/self/task` first and refuses if
//! another thread exists.

use std::net::SocketAddr;
use std::path::Path;

use rustix::process::{Gid, Uid};

/// An account from `/etc/passwd`.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Whether the process runs with root's effective uid.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// What to do about running as root without `--run-as`: a network-facing server refuses, a loopback one
/// goes on with a warning (the README's `cargo run --example server` and tests run as root in CI).
pub fn root_policy(listen: SocketAddr, run_as: Option<&str>) -> Result<Option<String>, String> {
    if run_as.is_some() || !is_root() {
        return Ok(None);
    }
    if listen.ip().to_canonical().is_loopback() {
        return Ok(Some(format!(
            "running as root on {listen}; use --run-as USER before listening on a public address"
        )));
    }
    Err(format!(
        "refusing to serve {listen} as root: a bug in the server would hand out root's rights. \
         Start it with --run-as USER (e.g. --run-as nobody), or as an unprivileged user."
    ))
}

/// Finds `name` in `/etc/passwd`.
pub fn lookup(name: &str) -> Result<Account, String> {
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| format!("--run-as: cannot read /etc/passwd: {e}"))?;
    passwd
        .lines()
        .find_map(|line| parse_passwd_line(line).filter(|account| account.name == name))
        .ok_or_else(|| format!("--run-as: no user {name:?} in /etc/passwd"))
}

fn parse_passwd_line(line: &str) -> Option<Account> {
    let mut fields = line.split(':');
    let name = fields.next()?.to_owned();
    let _password = fields.next()?;
    let uid = fields.next()?.parse().ok()?;
    let gid = fields.next()?.parse().ok()?;
    Some(Account { name, uid, gid })
}

/// Switches the process to `account`: supplementary groups to just its group, then gid, then uid (real,
/// effective and saved, so root cannot be taken back). Then checks that it took.
pub fn drop_to(account: &Account) -> Result<(), String> {
    if account.uid == 0 {
        return Err(format!("--run-as {}: that is root", account.name));
    }
    ensure_single_threaded()?;
    let fail = |what: &str, e: rustix::io::Errno| format!("--run-as {}: {what}: {e}", account.name);
    let gid = Gid::from_raw(account.gid);
    let uid = Uid::from_raw(account.uid);
    rustix::thread::set_thread_groups(&[gid]).map_err(|e| fail("setgroups", e))?;
    rustix::thread::set_thread_res_gid(gid, gid, gid).map_err(|e| fail("setresgid", e))?;
    rustix::thread::set_thread_res_uid(uid, uid, uid).map_err(|e| fail("setresuid", e))?;
    verify_dropped(account)
}

/// The credentials of a thread are per thread on Linux (see the module documentation).
fn ensure_single_threaded() -> Result<(), String> {
    let threads = std::fs::read_dir("/proc/self/task")
        .map_err(|e| format!("--run-as: cannot count threads in /proc/self/task: {e}"))?
        .count();
    if threads != 1 {
        return Err(format!(
            "--run-as: {threads} threads run already; the privilege drop would miss some"
        ));
    }
    Ok(())
}

fn verify_dropped(account: &Account) -> Result<(), String> {
    use rustix::process::{getegid, geteuid, getgid, getgroups, getuid};
    let groups = getgroups().map_err(|e| format!("--run-as: getgroups: {e}"))?;
    let gid = Gid::from_raw(account.gid);
    let dropped = getuid().as_raw() == account.uid
        && geteuid().as_raw() == account.uid
        && getgid() == gid
        && getegid() == gid
        && groups.iter().all(|g| *g == gid)
        // With the saved uid gone too, root is out of reach for good.
        && rustix::thread::set_thread_res_uid(Uid::ROOT, Uid::ROOT, Uid::ROOT).is_err();
    if dropped {
        Ok(())
    } else {
        Err(format!(
            "--run-as {}: the switch did not take",
            account.name
        ))
    }
}

/// How far Landlock confines the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confinement {
    Full,
    Partial,
    None,
}

/// Restricts the process's file system access to `root` (read-only unless `writable`), best effort: an
/// older kernel enforces what it knows (`Partial`), a kernel without Landlock nothing (`None`).
///
/// Only accesses that open a path are restricted (Landlock has no right for `stat`, `readlink` or
/// `realpath`), which is all the server does beneath the root after start-up. Nothing outside the root
/// is needed later: `/etc/passwd` and `/etc/group` are read before this runs, logs go to the already
/// open stderr, and the runtime's threads need no files.
pub fn confine_to(root: &Path, writable: bool) -> Result<Confinement, String> {
    use landlock::{
        ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
        path_beneath_rules,
    };
    let abi = ABI::V3;
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    let access = if writable {
        read | AccessFs::WriteFile
            | AccessFs::RemoveDir
            | AccessFs::RemoveFile
            | AccessFs::MakeDir
            | AccessFs::MakeReg
            | AccessFs::Refer
            | AccessFs::Truncate
    } else {
        read
    };
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|ruleset| ruleset.create())
        .and_then(|ruleset| ruleset.add_rules(path_beneath_rules([root], access)))
        .and_then(|ruleset| ruleset.restrict_self())
        .map_err(|e| format!("landlock: {e}"))?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Confinement::Full,
        RulesetStatus::PartiallyEnforced => Confinement::Partial,
        RulesetStatus::NotEnforced => Confinement::None,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_passwd_line;

    #[test]
    fn passwd_lines() {
        let account =
            parse_passwd_line("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin");
        let account = account.unwrap();
        assert_eq!((account.uid, account.gid), (65534, 65534));
        assert!(parse_passwd_line("broken:x:notanumber").is_none());
    }
}
