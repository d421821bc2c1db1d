//! Users and groups: Pebble's rules for user/user-id/group/group-id.

use nix::unistd::{Gid, Group, Uid, User};

/// Resolves the four optional fields to (uid, gid), or None when no user is asked for.
/// Names and ids must agree; a group needs a user; a user alone gets its primary group.
pub fn resolve_ids(
    user_id: Option<u32>,
    user: Option<&str>,
    group_id: Option<u32>,
    group: Option<&str>,
) -> Result<Option<(u32, u32)>, String> {
    let user = user.filter(|u| !u.is_empty());
    let group = group.filter(|g| !g.is_empty());
    let uid = match (user, user_id) {
        (None, None) => {
            if group.is_some() || group_id.is_some() {
                return Err("must specify user, not just group".into());
            }
            return Ok(None);
        }
        (None, Some(id)) => id,
        (Some(name), id) => {
            let found = User::from_name(name)
                .map_err(|e| format!("cannot look up user {name:?}: {e}"))?
                .ok_or_else(|| format!("user: unknown user {name}"))?;
            let found = found.uid.as_raw();
            if let Some(id) = id {
                if id != found {
                    return Err(format!(
                        "user {name:?} UID ({found}) does not match user-id ({id})"
                    ));
                }
            }
            found
        }
    };
    let gid = match (group, group_id) {
        (None, None) => match User::from_uid(Uid::from_raw(uid)) {
            Ok(Some(u)) => u.gid.as_raw(),
            _ => return Err(format!("cannot find primary group of user ID {uid}")),
        },
        (None, Some(id)) => id,
        (Some(name), id) => {
            let found = Group::from_name(name)
                .map_err(|e| format!("cannot look up group {name:?}: {e}"))?
                .ok_or_else(|| format!("group: unknown group {name}"))?;
            let found = found.gid.as_raw();
            if let Some(id) = id {
                if id != found {
                    return Err(format!(
                        "group {name:?} GID ({found}) does not match group-id ({id})"
                    ));
                }
            }
            found
        }
    };
    Ok(Some((uid, gid)))
}

/// HOME and USER for a uid, as Pebble sets them.
pub fn user_env(uid: u32) -> Vec<(String, String)> {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(u)) => vec![
            ("HOME".into(), u.dir.to_string_lossy().to_string()),
            ("USER".into(), u.name),
        ],
        _ => Vec::new(),
    }
}

/// A user's name, if it has one.
pub fn user_name(uid: u32) -> Option<String> {
    User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// A group's name, if it has one.
pub fn group_name(gid: u32) -> Option<String> {
    Group::from_gid(Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
}
