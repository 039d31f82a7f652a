//! Named network namespaces, `ip netns`-compatible (bind mounts under /var/run/netns), without
//! running `ip`: create/delete them, and run code inside one.
//!
//! Network namespaces are per thread, so [`in_netns`] runs the closure on a fresh thread that
//! joined the namespace; sockets (netlink included) opened there belong to that namespace for
//! their whole life, whichever thread later uses them.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Where `ip netns` keeps its namespaces (a bind mount of the namespace per file).
pub const NETNS_RUN_DIR: &str = "/var/run/netns";

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn with_context(err: io::Error, what: String) -> io::Error {
    io::Error::new(err.kind(), format!("{what}: {err}"))
}

fn last_os_error(what: String) -> io::Error {
    with_context(io::Error::last_os_error(), what)
}

/// The file for a namespace name: `NAME` → /var/run/netns/NAME; an absolute path (e.g.
/// /proc/PID/ns/net) is used as is.
pub fn netns_path(name: &str) -> io::Result<PathBuf> {
    if name.starts_with('/') {
        return Ok(PathBuf::from(name));
    }
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(invalid(format!(
            "'{name}' is not a valid network namespace name"
        )));
    }
    Ok(Path::new(NETNS_RUN_DIR).join(name))
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| invalid(format!("{} contains a NUL byte", path.display())))
}

/// Runs `f` on a new thread that has joined the network namespace `name` (see [`netns_path`])
/// and returns its result. A panic in `f` is propagated to the caller.
pub fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    let path = netns_path(name)?;
    let ns = File::open(&path)
        .map_err(|e| with_context(e, format!("opening network namespace {}", path.display())))?;
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name(format!("netns-{name}"))
            .spawn_scoped(scope, move || -> io::Result<T> {
                // SAFETY: plain syscall on an fd we own; only this thread changes namespace.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(last_os_error(format!(
                        "entering network namespace {}",
                        path.display()
                    )));
                }
                drop(ns);
                Ok(f())
            })?;
        match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Makes /var/run/netns a shared mount point, as `ip netns add` does, so namespace bind mounts
/// made here are seen by other mount namespaces (e.g. those of `ip netns exec`).
fn prepare_run_dir() -> io::Result<()> {
    std::fs::create_dir_all(NETNS_RUN_DIR)
        .map_err(|e| with_context(e, format!("creating {NETNS_RUN_DIR}")))?;
    let dir = c_path(Path::new(NETNS_RUN_DIR))?;
    let none = c"none";
    let mut made_mount_point = false;
    loop {
        // SAFETY: valid NUL-terminated strings, null data pointer is allowed.
        let rc = unsafe {
            libc::mount(
                none.as_ptr(),
                dir.as_ptr(),
                none.as_ptr(),
                libc::MS_SHARED | libc::MS_REC,
                std::ptr::null(),
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        // EINVAL: not a mount point yet; bind it onto itself once, then make it shared.
        if err.raw_os_error() != Some(libc::EINVAL) || made_mount_point {
            return Err(with_context(
                err,
                format!("making {NETNS_RUN_DIR} a shared mount"),
            ));
        }
        // SAFETY: as above.
        let rc = unsafe {
            libc::mount(
                dir.as_ptr(),
                dir.as_ptr(),
                none.as_ptr(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(last_os_error(format!(
                "bind-mounting {NETNS_RUN_DIR} onto itself"
            )));
        }
        made_mount_point = true;
    }
}

/// Creates the named network namespace (like `ip netns add NAME`). Fails if it exists.
/// The new namespace has only `lo`, down.
pub fn create_netns(name: &str) -> io::Result<()> {
    if name.starts_with('/') {
        return Err(invalid(format!("'{name}': give a name, not a path")));
    }
    let path = netns_path(name)?;
    prepare_run_dir()?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| with_context(e, format!("creating {}", path.display())))?;
    let target = c_path(&path)?;
    // unshare() moves only the calling thread, so do it on a throwaway thread and pin the new
    // namespace by bind-mounting that thread's ns file over the placeholder.
    let result = std::thread::scope(|scope| {
        let worker = scope.spawn(|| -> io::Result<()> {
            // SAFETY: plain syscalls with valid NUL-terminated strings.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(last_os_error(format!("creating network namespace {name}")));
            }
            let source = c"/proc/thread-self/ns/net";
            let none = c"none";
            let rc = unsafe {
                libc::mount(
                    source.as_ptr(),
                    target.as_ptr(),
                    none.as_ptr(),
                    libc::MS_BIND,
                    std::ptr::null(),
                )
            };
            if rc != 0 {
                return Err(last_os_error(format!(
                    "bind-mounting network namespace onto {}",
                    path.display()
                )));
            }
            Ok(())
        });
        worker
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("namespace creation thread panicked")))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    result
}

/// Deletes the named network namespace (like `ip netns del NAME`): the namespace goes away once
/// no process or socket holds it any more.
pub fn delete_netns(name: &str) -> io::Result<()> {
    if name.starts_with('/') {
        return Err(invalid(format!("'{name}': give a name, not a path")));
    }
    let path = netns_path(name)?;
    let target = c_path(&path)?;
    // SAFETY: valid NUL-terminated path. EINVAL = not mounted (half-created): still unlink.
    if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINVAL) && err.raw_os_error() != Some(libc::ENOENT) {
            return Err(with_context(err, format!("unmounting {}", path.display())));
        }
    }
    std::fs::remove_file(&path).map_err(|e| with_context(e, format!("removing {}", path.display())))
}

/// A named network namespace that is deleted when this guard is dropped (also on panic).
#[derive(Debug)]
pub struct NetnsGuard {
    name: String,
}

impl NetnsGuard {
    /// Creates the namespace `name` (see [`create_netns`]).
    pub fn create(name: &str) -> io::Result<NetnsGuard> {
        create_netns(name)?;
        Ok(NetnsGuard {
            name: name.to_string(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` inside this namespace (see [`in_netns`]).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        in_netns(&self.name, f)
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Err(e) = delete_netns(&self.name) {
            tracing::warn!("cleaning up network namespace {}: {e}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_run_dir() {
        assert_eq!(
            netns_path("lab-left").unwrap(),
            PathBuf::from("/var/run/netns/lab-left")
        );
        assert_eq!(
            netns_path("/proc/1/ns/net").unwrap(),
            PathBuf::from("/proc/1/ns/net")
        );
        assert!(netns_path("").is_err());
        assert!(netns_path("..").is_err());
        assert!(netns_path("a/b").is_err());
    }

    #[test]
    fn missing_namespace_is_a_clean_error() {
        let err = in_netns("ipsecgw-no-such-ns-xyz", || 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(
            err.to_string()
                .contains("/var/run/netns/ipsecgw-no-such-ns-xyz"),
            "{err}"
        );
    }
}
