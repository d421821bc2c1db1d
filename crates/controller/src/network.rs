//! Unit addresses: each controller home owns one block of loopback addresses,
//! `127.B.0.0/16` with `B` in 1..=254, so that controllers running side by side
//! on one machine (several `WARD_HOME`s, parallel tests) never hand two units
//! the same address and every unit can still use its workload's standard port.
//!
//! A home's block is claimed once and kept in `<home>/address-block`. Claims
//! are made in a registry directory holding one file per claimed block that
//! names the home owning it, under an exclusive `flock` of `<registry>/.lock`.
//! The registry is private to the user running the controller (see
//! [`default_registry`]): a directory other users could write to would let them
//! plant a symlink that a root controller then writes through, so a registry
//! that is not a private directory on a safe path is refused, and its files
//! are opened without following links. The search starts at a block derived from a hash of
//! the home's path and probes onwards. A claim whose home no longer records
//! that block (the home was destroyed or deleted) is stale and is taken over.
//!
//! ```
//! use controller::network::AddressBlock;
//! let b = AddressBlock::new(7).unwrap();
//! assert_eq!(b.unit_address(1), "127.7.0.1");
//! assert_eq!(b.unit_address(255), "127.7.1.1");
//! ```

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The file in a controller home that records its block.
pub const BLOCK_FILE: &str = "address-block";

/// Blocks available: the second octet of `127.B.0.0/16`; 0 is left to the
/// host (127.0.0.1, Debian's 127.0.1.1) and 255 unused.
const BLOCKS: u16 = 254;

/// Hosts used per /24: .1 to .254 (no .0 or .255, which some tools refuse).
const HOSTS: i64 = 254;

/// Errors claiming an address block.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A registry or home file could not be used.
    #[error("unit address block: {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The registry is not a private directory on a path only trusted users control.
    #[error("unit address registry {path}: {why}; remove it, or set WARD_ADDRESS_REGISTRY to a directory only you can write")]
    Insecure {
        /// The directory refused.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The home's block file holds something else than a block number.
    #[error("unit address block: {path} holds {content:?}, not a number in 1..=254; remove it to claim a new block")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What it holds.
        content: String,
    },
}

/// A controller's block of unit addresses, `127.B.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressBlock(u8);

impl AddressBlock {
    /// The block with second octet `b` (1..=254).
    pub fn new(b: u8) -> Option<AddressBlock> {
        (1..=254).contains(&b).then_some(AddressBlock(b))
    }

    /// The second octet.
    pub fn octet(self) -> u8 {
        self.0
    }

    /// The address of the `seq`-th unit ever added to the model (1-based):
    /// `127.B.C.H` with `H` in 1..=254; after 65,024 units it wraps.
    pub fn unit_address(self, seq: i64) -> String {
        let i = (seq.max(1) - 1) % (HOSTS * 256);
        format!("127.{}.{}.{}", self.0, i / HOSTS, 1 + i % HOSTS)
    }

    /// The block a home's path hashes to: where the search for a free block starts.
    fn preferred(home: &Path) -> u16 {
        // FNV-1a: stable across Rust versions, unlike std's hasher.
        let h = home
            .as_os_str()
            .as_encoded_bytes()
            .iter()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
            });
        (h % u64::from(BLOCKS)) as u16
    }
}

impl std::fmt::Display for AddressBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "127.{}.0.0/16", self.0)
    }
}

/// The registry directory: `$WARD_ADDRESS_REGISTRY`; else, for root,
/// `/run/ward/address-blocks`; for other users `$XDG_RUNTIME_DIR/ward/address-blocks`,
/// or `/tmp/ward-<uid>/address-blocks` without one. Each user's controllers share
/// their own registry; no directory is shared between users.
pub fn default_registry() -> PathBuf {
    if let Some(p) = std::env::var_os("WARD_ADDRESS_REGISTRY").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return PathBuf::from("/run/ward/address-blocks");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(run) => Path::new(&run).join("ward/address-blocks"),
        None => PathBuf::from(format!("/tmp/ward-{uid}/address-blocks")),
    }
}

/// Create `dir` (mode 0700) if needed and check that only this user can change
/// what it holds: `dir` itself is a real directory owned by us and writable by
/// nobody else, and every directory above it is owned by root or us and, when
/// others may write to it, sticky (as `/tmp` is), so nobody can swap `dir` out.
fn private_dir(dir: &Path) -> Result<PathBuf, NetworkError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let insecure = |path: &Path, why: String| NetworkError::Insecure {
        path: path.to_path_buf(),
        why,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io("creating", dir))?;
    let me = nix::unistd::geteuid().as_raw();
    let meta = std::fs::symlink_metadata(dir).map_err(io("inspecting", dir))?;
    if !meta.file_type().is_dir() {
        return Err(insecure(
            dir,
            "is a symbolic link or not a directory".into(),
        ));
    }
    if meta.uid() != me {
        return Err(insecure(
            dir,
            format!("is owned by uid {}, not by uid {me}", meta.uid()),
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(insecure(
            dir,
            format!(
                "is writable by other users (mode {:o})",
                meta.mode() & 0o7777
            ),
        ));
    }
    let real = dir.canonicalize().map_err(io("resolving", dir))?;
    for above in real.ancestors().skip(1) {
        let m = std::fs::metadata(above).map_err(io("inspecting", above))?;
        if m.uid() != 0 && m.uid() != me {
            return Err(insecure(
                above,
                format!(
                    "is owned by uid {}, who could replace what is below it",
                    m.uid()
                ),
            ));
        }
        if m.mode() & 0o002 != 0 && m.mode() & 0o1000 == 0 {
            return Err(insecure(
                above,
                format!(
                    "is world-writable without the sticky bit (mode {:o})",
                    m.mode() & 0o7777
                ),
            ));
        }
    }
    Ok(real)
}

/// Open options that never follow a symbolic link at the last path component.
fn no_follow() -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    o.custom_flags(nix::libc::O_NOFOLLOW);
    o
}

/// Replace `path` with `contents`: written to a fresh file beside it (created
/// exclusively, never through a link), then renamed over it, which replaces a
/// planted link rather than writing through it.
fn replace_file(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = no_follow()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(contents)?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// Read a small file without following a link at its last component.
fn read_no_follow(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut s = String::new();
    no_follow()
        .read(true)
        .open(path)?
        .take(4096)
        .read_to_string(&mut s)?;
    Ok(s)
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> NetworkError {
    let path = path.to_path_buf();
    move |source| NetworkError::Io { what, path, source }
}

/// The block `home` recorded, if any.
fn recorded(home: &Path) -> Result<Option<AddressBlock>, NetworkError> {
    let path = home.join(BLOCK_FILE);
    match read_no_follow(&path) {
        Ok(s) => s
            .trim()
            .parse::<u8>()
            .ok()
            .and_then(AddressBlock::new)
            .map(Some)
            .ok_or(NetworkError::Corrupt {
                path,
                content: s.trim().to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("reading", &path)(e)),
    }
}

/// Whether the claim file for `block` in the registry is held by a live home
/// other than `home` (one whose own block file still names `block`).
fn held_by_other(claim: &Path, block: AddressBlock, home: &Path) -> bool {
    let Ok(owner) = read_no_follow(claim) else {
        return false;
    };
    let owner = PathBuf::from(owner.trim());
    owner != home && matches!(recorded(&owner), Ok(Some(b)) if b == block)
}

/// The block of controller home `home`: the one it recorded, else a newly
/// claimed one (recorded in the home). `registry` is shared by every
/// controller on the machine. When every block is held by a live home, the
/// hashed block is shared (and a warning logged) rather than failing.
pub fn claim(home: &Path, registry: &Path) -> Result<AddressBlock, NetworkError> {
    std::fs::create_dir_all(home).map_err(io("creating", home))?;
    let home = home.canonicalize().map_err(io("resolving", home))?;
    let mine = recorded(&home)?;
    let lock = match private_dir(registry) {
        Ok(registry) => {
            let lock_path = registry.join(".lock");
            no_follow()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(&lock_path)
                .map(|f| (f, lock_path))
        }
        Err(e @ NetworkError::Insecure { .. }) => return Err(e),
        Err(NetworkError::Io { source, .. }) => Err(source),
        Err(e) => return Err(e),
    };
    let _lock = match lock {
        Ok((f, lock_path)) => nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| io("locking", &lock_path)(e.into()))?,
        Err(e) => {
            // No usable registry: the home's own record, else its hash, without coordination.
            if let Some(b) = mine {
                return Ok(b);
            }
            tracing::warn!(registry = %registry.display(), error = %e, "unit address registry unusable; choosing a block from WARD_HOME's hash");
            let b = AddressBlock(AddressBlock::preferred(&home) as u8 + 1);
            record(&home, b)?;
            return Ok(b);
        }
    };
    let claim_path = |b: AddressBlock| registry.join(format!("127.{}", b.0));
    let start = match mine {
        Some(b) => u16::from(b.0) - 1,
        None => AddressBlock::preferred(&home),
    };
    let mut chosen = None;
    for i in 0..BLOCKS {
        let b = AddressBlock(((start + i) % BLOCKS + 1) as u8);
        if !held_by_other(&claim_path(b), b, &home) {
            chosen = Some(b);
            break;
        }
    }
    let b = chosen.unwrap_or_else(|| {
        let b = mine.unwrap_or(AddressBlock(start as u8 + 1));
        tracing::warn!(block = %b, "every unit address block is held by a live controller home; sharing one");
        b
    });
    let path = claim_path(b);
    replace_file(&path, home.as_os_str().as_encoded_bytes(), 0o600)
        .map_err(io("claiming", &path))?;
    if mine != Some(b) {
        if let Some(old) = mine {
            // Our recorded block went to another home (its claim file was overwritten while
            // we were away): the old units keep their addresses, new ones use the new block.
            tracing::warn!(old = %old, new = %b, "unit address block changed");
        }
        record(&home, b)?;
    }
    Ok(b)
}

/// Release `home`'s claim (on destroy), if the registry still names it.
pub fn release(home: &Path, registry: &Path) {
    let Ok(home) = home.canonicalize() else {
        return;
    };
    if let Ok(Some(b)) = recorded(&home) {
        let claim = registry.join(format!("127.{}", b.0));
        if read_no_follow(&claim).is_ok_and(|o| Path::new(o.trim()) == home) {
            let _ = std::fs::remove_file(claim);
        }
    }
}

fn record(home: &Path, b: AddressBlock) -> Result<(), NetworkError> {
    let path = home.join(BLOCK_FILE);
    replace_file(&path, format!("{}\n", b.0).as_bytes(), 0o600).map_err(io("writing", &path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn unit_addresses_stay_inside_the_block_and_skip_network_and_broadcast() {
        let b = AddressBlock::new(42).unwrap();
        assert_eq!(b.unit_address(1), "127.42.0.1");
        assert_eq!(b.unit_address(254), "127.42.0.254");
        assert_eq!(b.unit_address(255), "127.42.1.1");
        let mut seen = HashSet::new();
        for seq in 1..=(HOSTS * 256) {
            let a = b.unit_address(seq);
            let o: Vec<u16> = a.split('.').map(|x| x.parse().unwrap()).collect();
            assert_eq!(o[..2], [127, 42], "{a}");
            assert!((1..=254).contains(&o[3]), "{a}");
            assert!(seen.insert(a));
        }
        assert_eq!(b.unit_address(HOSTS * 256 + 1), "127.42.0.1");
    }

    #[test]
    fn blocks_exclude_the_hosts_own_127_0_and_255() {
        assert!(AddressBlock::new(0).is_none());
        assert!(AddressBlock::new(255).is_none());
        assert_eq!(AddressBlock::new(1).unwrap().to_string(), "127.1.0.0/16");
    }

    #[test]
    fn distinct_homes_get_distinct_blocks_and_a_home_keeps_its_own() {
        let d = tempfile::tempdir().unwrap();
        let reg = d.path().join("registry");
        let mut blocks = HashSet::new();
        for i in 0..40 {
            let home = d.path().join(format!("home{i}"));
            let b = claim(&home, &reg).unwrap();
            assert!(blocks.insert(b), "{b} handed out twice");
            assert_eq!(claim(&home, &reg).unwrap(), b, "reopening changes nothing");
        }
    }

    #[test]
    fn the_same_hashed_start_probes_to_the_next_free_block() {
        let d = tempfile::tempdir().unwrap();
        let reg = d.path().join("registry");
        let a = d.path().join("a");
        let b = d.path().join("b");
        let first = claim(&a, &reg).unwrap();
        // Make b's claim start where a's is: its hash is irrelevant once a holds it.
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join(BLOCK_FILE), format!("{}\n", first.octet())).unwrap();
        let second = claim(&b, &reg).unwrap();
        assert_ne!(first, second);
        assert_eq!(recorded(&b).unwrap(), Some(second));
        assert_eq!(claim(&a, &reg).unwrap(), first);
    }

    #[test]
    fn a_deleted_homes_claim_is_stale_and_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let reg = d.path().join("registry");
        let gone = d.path().join("gone");
        let b = claim(&gone, &reg).unwrap();
        std::fs::remove_dir_all(&gone).unwrap();
        // Every other block is held by a live home: only the stale one is free.
        for i in 1..=254u8 {
            let block = AddressBlock(i);
            if block == b {
                continue;
            }
            let h = d.path().join(format!("live{i}"));
            std::fs::create_dir_all(&h).unwrap();
            record(&h, block).unwrap();
            std::fs::write(reg.join(format!("127.{i}")), h.to_str().unwrap()).unwrap();
        }
        let newcomer = d.path().join("new");
        assert_eq!(claim(&newcomer, &reg).unwrap(), b);
        // Now everything is held: a further home shares rather than fails.
        let extra = d.path().join("extra");
        assert!(claim(&extra, &reg).is_ok());
    }

    #[test]
    fn release_frees_the_block_for_others() {
        let d = tempfile::tempdir().unwrap();
        let reg = d.path().join("registry");
        let a = d.path().join("a");
        let b = claim(&a, &reg).unwrap();
        release(&a, &reg);
        assert!(!reg.join(format!("127.{}", b.octet())).exists());
    }

    #[test]
    fn a_corrupt_block_file_names_itself() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(BLOCK_FILE), "x\n").unwrap();
        let e = claim(d.path(), &d.path().join("reg")).unwrap_err();
        assert!(e.to_string().contains(BLOCK_FILE), "{e}");
    }

    /// A directory under the test's temp dir that others may traverse (0755), so
    /// that only the registry's own mode keeps them out.
    fn open_parent(d: &tempfile::TempDir) -> PathBuf {
        let p = d.path().join("pub");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn the_registry_is_created_private() {
        let d = tempfile::tempdir().unwrap();
        let reg = open_parent(&d).join("registry");
        let b = claim(&d.path().join("home"), &reg).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&reg), 0o700);
        assert_eq!(mode(&reg.join(".lock")), 0o600);
        assert_eq!(mode(&reg.join(format!("127.{}", b.octet()))), 0o600);
    }

    #[test]
    fn a_registry_others_can_write_is_refused_by_name() {
        let d = tempfile::tempdir().unwrap();
        let reg = open_parent(&d).join("registry");
        std::fs::create_dir_all(&reg).unwrap();
        std::fs::set_permissions(&reg, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let e = claim(&d.path().join("home"), &reg).unwrap_err();
        assert!(matches!(e, NetworkError::Insecure { .. }), "{e}");
        assert!(
            e.to_string().contains("registry") && e.to_string().contains("writable by other users"),
            "{e}"
        );
    }

    #[test]
    fn a_registry_that_is_a_symlink_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("elsewhere");
        std::fs::create_dir_all(&real).unwrap();
        let reg = d.path().join("registry");
        std::os::unix::fs::symlink(&real, &reg).unwrap();
        let e = claim(&d.path().join("home"), &reg).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
    }

    #[test]
    fn a_registry_below_a_world_writable_non_sticky_directory_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let open = d.path().join("open");
        std::fs::create_dir_all(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = claim(&d.path().join("home"), &open.join("registry")).unwrap_err();
        assert!(e.to_string().contains("without the sticky bit"), "{e}");
    }

    #[test]
    fn a_planted_claim_link_is_replaced_not_written_through() {
        let d = tempfile::tempdir().unwrap();
        let reg = d.path().join("registry");
        let home = d.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(home.join(BLOCK_FILE), "9\n").unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::fs::create_dir_all(&reg).unwrap();
        std::os::unix::fs::symlink(&victim, reg.join("127.9")).unwrap();
        assert_eq!(claim(&home, &reg).unwrap(), AddressBlock(9));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let meta = std::fs::symlink_metadata(reg.join("127.9")).unwrap();
        assert!(meta.file_type().is_file());
    }

    #[test]
    fn another_local_user_cannot_plant_files_in_the_registry() {
        if !nix::unistd::geteuid().is_root() || !Path::new("/usr/bin/setpriv").exists() {
            eprintln!("skipped: needs root and setpriv to act as another user");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let reg = open_parent(&d).join("registry");
        let b = claim(&d.path().join("home"), &reg).unwrap();
        let as_nobody = |script: &str| {
            std::process::Command::new("/usr/bin/setpriv")
                .args([
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "--",
                    "sh",
                    "-c",
                    script,
                ])
                .output()
                .unwrap()
        };
        // nobody can reach the parent (0755), so only the registry's mode refuses it.
        assert!(
            as_nobody(&format!("ls {}", reg.parent().unwrap().display()))
                .status
                .success()
        );
        let claim_file = reg.join(format!("127.{}", b.octet()));
        for script in [
            format!("ln -s /etc/passwd {}/127.200", reg.display()),
            format!("echo /elsewhere > {}", claim_file.display()),
            format!("cat {}", claim_file.display()),
        ] {
            let out = as_nobody(&script);
            assert!(!out.status.success(), "nobody could run {script:?}");
        }
        assert!(!reg.join("127.200").exists());
    }
}
