//! `ipsecgw list-algorithms`: placeholder replaced below.
pub fn list_algorithms() -> String {
    String::new()
}
