//! Who may talk to campd's Unix sockets: file mode and group of the control and ingest
//! sockets, and the group-name lookup the configuration needs.
//!
//! Both sockets are created mode 0660: the owner (the user campd runs as) and members of the
//! socket's group may connect, nobody else. The group is campd's own unless configured
//! (`socket_group`), so an operator grants `campctl` and an ingest producer access by adding
//! their users to one group instead of running them as root. See `docs/security.md`.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Mode of the control and ingest sockets: read and write (connect) for owner and group.
pub const SOCKET_MODE: u32 = 0o660;

/// Gives the socket at `path` mode [`SOCKET_MODE`] and, if `group` is set, that group.
///
/// Call it right after `bind`: the group is changed first, then the mode, so that at no point
/// does the file grant the new group more than 0660 does.
pub fn restrict_socket(path: &Path, group: Option<u32>) -> io::Result<()> {
    // Before the group changes, only the owner may connect.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    if let Some(gid) = group {
        std::os::unix::fs::chown(path, None, Some(gid))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
}

/// Why a group name was refused.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// No group of that name in the group database file.
    #[error("no group named {0:?}")]
    Unknown(String),
    /// The group database could not be read.
    #[error("reading the group database: {0}")]
    Read(#[from] io::Error),
}

/// The gid of `name`: a number is taken as a gid, anything else is looked up in `group_db`
/// (the text of `/etc/group`: `name:password:gid:members` lines).
pub fn resolve_group(name: &str, group_db: &str) -> Result<u32, GroupError> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    group_db
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let mut f = l.split(':');
            let n = f.next()?;
            let _password = f.next()?;
            let gid = f.next()?.trim().parse::<u32>().ok()?;
            (n == name).then_some(gid)
        })
        .ok_or_else(|| GroupError::Unknown(name.to_owned()))
}

/// [`resolve_group`] against the system's `/etc/group` (groups from other NSS sources, such
/// as LDAP, must be given by number).
pub fn resolve_system_group(name: &str) -> Result<u32, GroupError> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    resolve_group(name, &std::fs::read_to_string("/etc/group")?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn groups_resolve_by_name_or_number() {
        let db = "# comment\nroot:x:0:\ncamp:x:1234:alice,bob\nbroken\nnogid:x:abc:\n";
        assert_eq!(resolve_group("camp", db).unwrap(), 1234);
        assert_eq!(resolve_group("root", db).unwrap(), 0);
        assert_eq!(resolve_group("777", db).unwrap(), 777);
        assert!(matches!(
            resolve_group("nogid", db),
            Err(GroupError::Unknown(_))
        ));
        assert!(matches!(
            resolve_group("alice", db),
            Err(GroupError::Unknown(_))
        ));
        assert!(matches!(resolve_group("", db), Err(GroupError::Unknown(_))));
    }

    #[test]
    fn sockets_get_mode_0660_and_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let _l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let own_gid = std::fs::metadata(&path).unwrap().gid();
        restrict_socket(&path, None).unwrap();
        let m = std::fs::metadata(&path).unwrap();
        assert_eq!(m.mode() & 0o777, 0o660);
        assert_eq!(m.gid(), own_gid);
        // Changing to our own group always works; another group only as root.
        restrict_socket(&path, Some(own_gid)).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o660);
        if nix_is_root() {
            restrict_socket(&path, Some(4242)).unwrap();
            let m = std::fs::metadata(&path).unwrap();
            assert_eq!((m.gid(), m.mode() & 0o777), (4242, 0o660));
        }
    }

    fn nix_is_root() -> bool {
        // The owner of a file we just created is our effective uid.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("probe");
        std::fs::write(&f, b"").unwrap();
        std::fs::metadata(&f).unwrap().uid() == 0
    }
}
