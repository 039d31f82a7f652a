//! The pre-shared key of a `[[connection]]`: inline `psk` or `psk_file`, with the file's
//! mode checked and every copy of the secret wiped when dropped.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::config::reader::{Ctx, Section};
use crate::config::values::ValueError;
use crate::config::Psk;

const MIN_PSK_LEN: usize = 8;

/// Reads the PSK from exactly one of `psk` / `psk_file`, checking the file's permissions.
pub(super) fn read(ctx: &mut Ctx, s: Section) -> Option<Psk> {
    let insecure_ok = s.boolean(ctx, "psk_file_insecure").unwrap_or(false);
    let (secret, span) = match (s.get("psk"), s.get("psk_file")) {
        (Some(_), Some(file_node)) => {
            ctx.err(&file_node.span, "give either `psk` or `psk_file`, not both");
            return None;
        }
        (None, None) => {
            ctx.err(s.span, "missing `psk_file` (or `psk`) in [[connection]]");
            return None;
        }
        (Some(_), None) => {
            let (text, node) = s.string(ctx, "psk")?;
            (Zeroizing::new(text.to_string()), node.span.clone())
        }
        (None, Some(_)) => {
            let (file, node) = s.string(ctx, "psk_file")?;
            let path = match ctx.base_dir {
                Some(dir) if Path::new(file).is_relative() => dir.join(file),
                _ => PathBuf::from(file),
            };
            // Opened without blocking and checked through the open file: a FIFO (or a
            // device) named as psk_file would otherwise block `check` and `run` forever, and
            // checking by path before reading would race a swap of the file.
            let opened = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(&path)
                .and_then(|f| f.metadata().map(|m| (f, m)));
            let (mut file, meta) = match opened {
                Ok(fm) => fm,
                Err(e) => {
                    ctx.err(
                        &node.span,
                        format!("`psk_file`: cannot read {}: {e}", path.display()),
                    );
                    return None;
                }
            };
            if !meta.is_file() {
                ctx.err(
                    &node.span,
                    format!(
                        "`psk_file`: {} is not a regular file ({})",
                        path.display(),
                        file_kind(&meta)
                    ),
                );
                return None;
            }
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 && !insecure_ok {
                ctx.err(
                    &node.span,
                    format!(
                        "`psk_file`: {} is readable by group/others (mode {mode:04o}); run `chmod 600 {}` \
                         or set psk_file_insecure = true",
                        path.display(),
                        path.display()
                    ),
                );
                return None;
            }
            // Every copy of the key is wiped when dropped, the raw file bytes included (room
            // for the whole file up front, so that reading never leaves a grown-out copy).
            let room = usize::try_from(meta.len()).unwrap_or(0).min(1 << 20) + 1;
            let mut raw = Zeroizing::new(Vec::with_capacity(room));
            match file.read_to_end(&mut raw).map(|_| raw) {
                Ok(bytes) => match std::str::from_utf8(&bytes) {
                    // Only the trailing newline an editor adds is dropped; inner spaces are key material.
                    Ok(text) => (
                        Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_string()),
                        node.span.clone(),
                    ),
                    Err(_) => {
                        ctx.err(
                            &node.span,
                            format!(
                                "`psk_file`: {} is not UTF-8 text (use 0x… hex)",
                                path.display()
                            ),
                        );
                        return None;
                    }
                },
                Err(e) => {
                    ctx.err(
                        &node.span,
                        format!("`psk_file`: cannot read {}: {e}", path.display()),
                    );
                    return None;
                }
            }
        }
    };
    let bytes = match decode_psk(&secret) {
        Ok(b) => b,
        Err(e) => {
            ctx.err(&span, e.to_string());
            return None;
        }
    };
    if bytes.len() < MIN_PSK_LEN {
        // Never echo the key itself, only its length.
        ctx.err(
            &span,
            format!(
                "pre-shared key is {} bytes; at least {MIN_PSK_LEN} are required",
                bytes.len()
            ),
        );
        return None;
    }
    Some(Psk(bytes))
}

/// What a non-regular file is, for the error message.
fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "not a file"
    }
}

/// strongSwan-style secrets: `0x…` is hex, anything else is the literal bytes.
fn decode_psk(secret: &str) -> Result<Zeroizing<Vec<u8>>, ValueError> {
    let Some(hex) = secret
        .strip_prefix("0x")
        .or_else(|| secret.strip_prefix("0X"))
    else {
        return Ok(Zeroizing::new(secret.as_bytes().to_vec()));
    };
    let hex = hex.trim();
    if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ValueError::PskHex);
    }
    Ok(Zeroizing::new(
        (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .unwrap_or(0)
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psk_hex() {
        assert_eq!(*decode_psk("0x0102ff").unwrap(), vec![1, 2, 255]);
        assert!(decode_psk("0x012").is_err());
        assert_eq!(
            *decode_psk("IamSecure123").unwrap(),
            b"IamSecure123".to_vec()
        );
    }
}
