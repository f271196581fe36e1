//! VPP's API error numbers (`VNET_API_ERROR_*`, the negative `retval` of a reply) and their
//! names, for error messages an operator can search for. The table is VPP's
//! `src/vnet/error.h` as of 26.06 for the numbers a forwarder meets; others are named
//! `UNKNOWN` and keep their number.

const NAMES: &[(i32, &str)] = &[
    (-1, "UNSPECIFIED"),
    (-2, "INVALID_SW_IF_INDEX"),
    (-3, "NO_SUCH_FIB"),
    (-4, "NO_SUCH_INNER_FIB"),
    (-5, "NO_SUCH_LABEL"),
    (-6, "NO_SUCH_ENTRY"),
    (-7, "INVALID_VALUE"),
    (-8, "INVALID_VALUE_2"),
    (-9, "UNIMPLEMENTED"),
    (-10, "INVALID_SW_IF_INDEX_2"),
    (-11, "SYSCALL_ERROR_1"),
    (-12, "SYSCALL_ERROR_2"),
    (-13, "SYSCALL_ERROR_3"),
    (-14, "SYSCALL_ERROR_4"),
    (-15, "SYSCALL_ERROR_5"),
    (-16, "SYSCALL_ERROR_6"),
    (-17, "SYSCALL_ERROR_7"),
    (-18, "SYSCALL_ERROR_8"),
    (-19, "SYSCALL_ERROR_9"),
    (-20, "SYSCALL_ERROR_10"),
    (-30, "FEATURE_DISABLED"),
    (-31, "INVALID_REGISTRATION"),
    (-50, "NEXT_HOP_NOT_IN_FIB"),
    (-51, "UNKNOWN_DESTINATION"),
    (-52, "NO_PATHS_IN_ROUTE"),
    (-53, "NEXT_HOP_NOT_FOUND_MP"),
    (-54, "NO_MATCHING_INTERFACE"),
    (-55, "INVALID_VLAN"),
    (-56, "VLAN_ALREADY_EXISTS"),
    (-57, "INVALID_SRC_ADDRESS"),
    (-58, "INVALID_DST_ADDRESS"),
    (-59, "ADDRESS_LENGTH_MISMATCH"),
    (-60, "ADDRESS_NOT_FOUND_FOR_INTERFACE"),
    (-61, "ADDRESS_NOT_DELETABLE"),
    (-62, "IP6_NOT_ENABLED"),
    (-63, "NO_SUCH_NODE"),
    (-64, "NO_SUCH_NODE2"),
    (-65, "NO_SUCH_TABLE"),
    (-66, "NO_SUCH_TABLE2"),
    (-67, "NO_SUCH_TABLE3"),
    (-68, "SUBIF_ALREADY_EXISTS"),
    (-69, "SUBIF_CREATE_FAILED"),
    (-70, "INVALID_MEMORY_SIZE"),
    (-71, "INVALID_INTERFACE"),
    (-72, "INVALID_VLAN_TAG_COUNT"),
    (-73, "INVALID_ARGUMENT"),
    (-74, "UNEXPECTED_INTF_STATE"),
    (-75, "TUNNEL_EXIST"),
    (-76, "INVALID_DECAP_NEXT"),
    (-77, "RESPONSE_NOT_READY"),
    (-78, "NOT_CONNECTED"),
    (-79, "IF_ALREADY_EXISTS"),
    (-80, "BOND_SLAVE_NOT_ALLOWED"),
    (-81, "VALUE_EXIST"),
    (-82, "SAME_SRC_DST"),
    (-83, "IP6_MULTICAST_ADDRESS_NOT_PRESENT"),
    (-84, "SR_POLICY_NAME_NOT_PRESENT"),
    (-85, "NOT_RUNNING_AS_ROOT"),
    (-86, "ALREADY_CONNECTED"),
];

/// The name of a VPP error number, `UNKNOWN` for one this table lacks.
pub fn name(retval: i32) -> &'static str {
    NAMES
        .iter()
        .find(|(number, _)| *number == retval)
        .map_or("UNKNOWN", |(_, name)| name)
}

pub const INVALID_SW_IF_INDEX: i32 = -2;
pub const NO_SUCH_ENTRY: i32 = -6;
pub const SYSCALL_ERROR_1: i32 = -11;
pub const INVALID_REGISTRATION: i32 = -31;
pub const TUNNEL_EXIST: i32 = -75;
pub const IF_ALREADY_EXISTS: i32 = -79;
pub const VALUE_EXIST: i32 = -81;

#[cfg(test)]
mod tests {
    #[test]
    fn names_what_it_knows_and_keeps_the_rest_unknown() {
        assert_eq!(super::name(-2), "INVALID_SW_IF_INDEX");
        assert_eq!(super::name(-31), "INVALID_REGISTRATION");
        assert_eq!(super::name(-9999), "UNKNOWN");
    }
}
