//! The lab without root: what it takes to enter a user namespace, and which
//! host setting is to blame when the kernel refuses.
//!
//! An unprivileged process may `unshare(CLONE_NEWUSER | CLONE_NEWNET)`: it
//! then holds every capability inside the new user namespace, so also
//! CAP_NET_ADMIN and CAP_NET_RAW in the network namespace created with it,
//! and nothing at all on the host. It maps itself to root inside by writing
//! `deny` to `/proc/self/setgroups` and one line each to `uid_map` and
//! `gid_map` (user_namespaces(7)).
//!
//! Hosts can forbid this. Three settings do, and each shows itself
//! differently:
//! - `kernel.unprivileged_userns_clone=0` (a Debian kernel patch): `unshare`
//!   fails with EPERM.
//! - `user.max_user_namespaces=0` (upstream): `unshare` fails with ENOSPC.
//! - `kernel.apparmor_restrict_unprivileged_userns=1` (Ubuntu 23.10 and
//!   later): `unshare` succeeds, but the namespace is powerless. Writing
//!   `uid_map` fails with EPERM, or later every capability check does (a
//!   sysctl write, `ip link add`). Only root can read this setting.
//!
//! Pure: [`diagnose`] works on an errno and sysctl values passed in, so the
//! tests need no privileges. [`UsernsSysctls::read`] is the only I/O here,
//! and it reads `/proc/sys` without privileges.

use std::fmt;
use std::io;

use nix::errno::Errno;

/// `kernel.unprivileged_userns_clone`, as procfs shows it.
pub const UNPRIVILEGED_USERNS_CLONE: &str = "/proc/sys/kernel/unprivileged_userns_clone";
/// `user.max_user_namespaces`, as procfs shows it (the limit of the user
/// namespace the reader is in).
pub const MAX_USER_NAMESPACES: &str = "/proc/sys/user/max_user_namespaces";
/// `kernel.apparmor_restrict_unprivileged_userns`, as procfs shows it.
pub const APPARMOR_RESTRICT_UNPRIVILEGED_USERNS: &str =
    "/proc/sys/kernel/apparmor_restrict_unprivileged_userns";

/// One line of `/proc/self/uid_map` or `gid_map`: the id `inside` the new
/// namespace is the id `outside` in the parent, for one id.
///
/// ```
/// assert_eq!(synack::net::userns::id_map_line(0, 1000), "0 1000 1\n");
/// ```
pub fn id_map_line(inside: u32, outside: u32) -> String {
    format!("{inside} {outside} 1\n")
}

/// A sysctl as an unprivileged process sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sysctl {
    /// This kernel has no such setting (or it held no number).
    #[default]
    Absent,
    /// The setting exists but only root may read it.
    Unreadable,
    /// Its value.
    Value(u64),
}

impl Sysctl {
    /// What reading the sysctl's file gave.
    pub fn from_read(read: io::Result<String>) -> Self {
        match read {
            Ok(text) => text
                .trim()
                .parse()
                .map(Sysctl::Value)
                .unwrap_or(Sysctl::Absent),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Sysctl::Absent,
            Err(_) => Sysctl::Unreadable,
        }
    }
}

/// The three settings that can forbid unprivileged user namespaces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsernsSysctls {
    pub unprivileged_userns_clone: Sysctl,
    pub max_user_namespaces: Sysctl,
    pub apparmor_restrict_unprivileged_userns: Sysctl,
}

impl UsernsSysctls {
    /// Reads the three settings from `/proc/sys`; needs no privileges.
    pub fn read() -> Self {
        let read = |path| Sysctl::from_read(std::fs::read_to_string(path));
        UsernsSysctls {
            unprivileged_userns_clone: read(UNPRIVILEGED_USERNS_CLONE),
            max_user_namespaces: read(MAX_USER_NAMESPACES),
            apparmor_restrict_unprivileged_userns: read(APPARMOR_RESTRICT_UNPRIVILEGED_USERNS),
        }
    }
}

/// How far entering the user namespace got, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsernsStep {
    /// `unshare(CLONE_NEWUSER | CLONE_NEWNET)`.
    Unshare,
    /// Writing `deny` to `/proc/self/setgroups`.
    Setgroups,
    /// Writing `/proc/self/uid_map`.
    UidMap,
    /// Writing `/proc/self/gid_map`.
    GidMap,
    /// Inside the namespace, building the lab's network (sysctls, `ip`,
    /// ethtool): where a powerless namespace first shows.
    NetworkSetup,
}

impl fmt::Display for UsernsStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UsernsStep::Unshare => "unshare(CLONE_NEWUSER | CLONE_NEWNET)",
            UsernsStep::Setgroups => "writing /proc/self/setgroups",
            UsernsStep::UidMap => "writing /proc/self/uid_map",
            UsernsStep::GidMap => "writing /proc/self/gid_map",
            UsernsStep::NetworkSetup => "setting up the network inside the user namespace",
        })
    }
}

/// The host setting that forbids unprivileged user namespaces. `Display`
/// names it as `sysctl` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocker {
    /// `kernel.unprivileged_userns_clone=0`.
    UnprivilegedUsernsClone,
    /// `user.max_user_namespaces=0`.
    MaxUserNamespaces,
    /// `kernel.apparmor_restrict_unprivileged_userns`; `known` when its
    /// value could be read (only root can, on Ubuntu).
    AppArmorRestrict { known: bool },
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocker::UnprivilegedUsernsClone => f.write_str("kernel.unprivileged_userns_clone=0"),
            Blocker::MaxUserNamespaces => f.write_str("user.max_user_namespaces=0"),
            Blocker::AppArmorRestrict { known: true } => {
                f.write_str("kernel.apparmor_restrict_unprivileged_userns=1")
            }
            Blocker::AppArmorRestrict { known: false } => f.write_str(
                "kernel.apparmor_restrict_unprivileged_userns, most likely 1 (only root can read it)",
            ),
        }
    }
}

/// Which setting explains that `step` failed with `errno`, if one does.
///
/// Only refusals count (EPERM, EACCES, ENOSPC). The first two settings
/// stop `unshare` itself, so they explain nothing once it succeeded; the
/// AppArmor one lets `unshare` through and takes the capabilities away, so
/// it can explain any step.
pub fn diagnose(step: UsernsStep, errno: Errno, sysctls: &UsernsSysctls) -> Option<Blocker> {
    if !matches!(errno, Errno::EPERM | Errno::EACCES | Errno::ENOSPC) {
        return None;
    }
    if step == UsernsStep::Unshare {
        if sysctls.max_user_namespaces == Sysctl::Value(0) {
            return Some(Blocker::MaxUserNamespaces);
        }
        if sysctls.unprivileged_userns_clone == Sysctl::Value(0) {
            return Some(Blocker::UnprivilegedUsernsClone);
        }
    }
    if errno == Errno::ENOSPC {
        // The AppArmor restriction never runs a limit out.
        return None;
    }
    match sysctls.apparmor_restrict_unprivileged_userns {
        Sysctl::Value(0) | Sysctl::Absent => None,
        Sysctl::Value(_) => Some(Blocker::AppArmorRestrict { known: true }),
        Sysctl::Unreadable => Some(Blocker::AppArmorRestrict { known: false }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream kernel that allows unprivileged user namespaces.
    fn open_host() -> UsernsSysctls {
        UsernsSysctls {
            unprivileged_userns_clone: Sysctl::Absent,
            max_user_namespaces: Sysctl::Value(96364),
            apparmor_restrict_unprivileged_userns: Sysctl::Absent,
        }
    }

    #[test]
    fn the_map_lines_put_the_caller_at_root() {
        assert_eq!(id_map_line(0, 1000), "0 1000 1\n");
        assert_eq!(id_map_line(0, 65534), "0 65534 1\n");
    }

    #[test]
    fn a_sysctl_reads_as_a_value_absent_or_unreadable() {
        assert_eq!(Sysctl::from_read(Ok("0\n".into())), Sysctl::Value(0));
        assert_eq!(
            Sysctl::from_read(Ok("96364\n".into())),
            Sysctl::Value(96364)
        );
        assert_eq!(Sysctl::from_read(Ok("junk".into())), Sysctl::Absent);
        assert_eq!(
            Sysctl::from_read(Err(io::ErrorKind::NotFound.into())),
            Sysctl::Absent
        );
        assert_eq!(
            Sysctl::from_read(Err(io::ErrorKind::PermissionDenied.into())),
            Sysctl::Unreadable
        );
    }

    #[test]
    fn debian_switch_off_refuses_unshare_with_eperm() {
        let sysctls = UsernsSysctls {
            unprivileged_userns_clone: Sysctl::Value(0),
            ..open_host()
        };
        assert_eq!(
            diagnose(UsernsStep::Unshare, Errno::EPERM, &sysctls),
            Some(Blocker::UnprivilegedUsernsClone)
        );
        assert_eq!(
            Blocker::UnprivilegedUsernsClone.to_string(),
            "kernel.unprivileged_userns_clone=0"
        );
    }

    #[test]
    fn a_zero_namespace_limit_refuses_unshare_with_enospc() {
        let sysctls = UsernsSysctls {
            max_user_namespaces: Sysctl::Value(0),
            ..open_host()
        };
        assert_eq!(
            diagnose(UsernsStep::Unshare, Errno::ENOSPC, &sysctls),
            Some(Blocker::MaxUserNamespaces)
        );
        assert_eq!(
            Blocker::MaxUserNamespaces.to_string(),
            "user.max_user_namespaces=0"
        );
    }

    #[test]
    fn a_full_but_nonzero_limit_is_not_a_setting_to_blame() {
        assert_eq!(
            diagnose(UsernsStep::Unshare, Errno::ENOSPC, &open_host()),
            None
        );
    }

    #[test]
    fn apparmor_restriction_explains_a_refused_uid_map_or_a_powerless_namespace() {
        let sysctls = UsernsSysctls {
            unprivileged_userns_clone: Sysctl::Value(1),
            apparmor_restrict_unprivileged_userns: Sysctl::Value(1),
            ..open_host()
        };
        for step in [
            UsernsStep::Unshare,
            UsernsStep::Setgroups,
            UsernsStep::UidMap,
            UsernsStep::GidMap,
            UsernsStep::NetworkSetup,
        ] {
            assert_eq!(
                diagnose(step, Errno::EPERM, &sysctls),
                Some(Blocker::AppArmorRestrict { known: true }),
                "{step}"
            );
        }
        assert_eq!(
            diagnose(UsernsStep::NetworkSetup, Errno::EACCES, &sysctls),
            Some(Blocker::AppArmorRestrict { known: true })
        );
        assert_eq!(
            Blocker::AppArmorRestrict { known: true }.to_string(),
            "kernel.apparmor_restrict_unprivileged_userns=1"
        );
    }

    #[test]
    fn an_apparmor_setting_only_root_can_read_is_named_as_likely() {
        let sysctls = UsernsSysctls {
            apparmor_restrict_unprivileged_userns: Sysctl::Unreadable,
            ..open_host()
        };
        let blocker = diagnose(UsernsStep::UidMap, Errno::EPERM, &sysctls);
        assert_eq!(blocker, Some(Blocker::AppArmorRestrict { known: false }));
        assert!(blocker
            .map(|b| b.to_string())
            .is_some_and(|s| s.contains("most likely 1")));
    }

    #[test]
    fn apparmor_restriction_switched_off_explains_nothing() {
        let sysctls = UsernsSysctls {
            apparmor_restrict_unprivileged_userns: Sysctl::Value(0),
            ..open_host()
        };
        assert_eq!(diagnose(UsernsStep::UidMap, Errno::EPERM, &sysctls), None);
    }

    #[test]
    fn the_first_two_settings_do_not_explain_a_failure_after_unshare() {
        // unshare got through, so neither setting was in force for it.
        let sysctls = UsernsSysctls {
            unprivileged_userns_clone: Sysctl::Value(0),
            max_user_namespaces: Sysctl::Value(0),
            apparmor_restrict_unprivileged_userns: Sysctl::Absent,
        };
        assert_eq!(
            diagnose(UsernsStep::NetworkSetup, Errno::EPERM, &sysctls),
            None
        );
    }

    #[test]
    fn an_open_host_or_another_errno_names_no_setting() {
        assert_eq!(
            diagnose(UsernsStep::Unshare, Errno::EPERM, &open_host()),
            None
        );
        let closed = UsernsSysctls {
            unprivileged_userns_clone: Sysctl::Value(0),
            max_user_namespaces: Sysctl::Value(0),
            apparmor_restrict_unprivileged_userns: Sysctl::Value(1),
        };
        // EINVAL: the process already had threads, whatever the settings.
        assert_eq!(diagnose(UsernsStep::Unshare, Errno::EINVAL, &closed), None);
    }
}
