//! The policies shipped in the binary and which calls each applies to (NSM's table:
//! network-service calls get the common token checks plus the server or client set; registry
//! calls the common checks plus client_allowed; monitor calls service_connection), plus
//! nsm-rs's service allow list on Request.
//!
//! The scope lives here, not in the Rego, so a policy file that replaces a builtin keeps the
//! builtin's scope and need not repeat it. Policies added from a policy directory have no
//! entry here and are evaluated for every call.

use crate::input::{Call, Input, Side};

/// One policy embedded in the binary.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Builtin {
    /// Policy name; also the file name (`<name>.rego`) that replaces it from a policy directory.
    pub(crate) name: &'static str,
    /// The Rego source.
    pub(crate) rego: &'static str,
    /// The calls it applies to.
    pub(crate) scope: Scope,
}

/// Which calls a policy is evaluated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Every call: policies added from a policy directory.
    Everything,
    /// Calls carrying a path with tokens, both sides.
    PathCalls,
    /// Network-service calls, server side.
    NetworkServiceServer,
    /// Network-service calls, client side.
    NetworkServiceClient,
    /// Registry changes (Register, Unregister), server side.
    RegistryChange,
    /// MonitorConnections, server side.
    Monitor,
    /// Request, server side.
    RequestServer,
}

impl Scope {
    pub(crate) fn applies_to(self, input: &Input) -> bool {
        let server = input.side == Side::Server;
        let network_service = matches!(input.call, Call::Request | Call::Close);
        match self {
            Scope::Everything => true,
            Scope::PathCalls => input.call != Call::MonitorConnections,
            Scope::NetworkServiceServer => network_service && server,
            Scope::NetworkServiceClient => network_service && !server,
            Scope::RegistryChange => {
                server
                    && matches!(
                        input.call,
                        Call::RegistryRegister | Call::RegistryUnregister
                    )
            }
            Scope::Monitor => server && input.call == Call::MonitorConnections,
            Scope::RequestServer => server && input.call == Call::Request,
        }
    }
}

/// The builtins in evaluation order: the first that denies is the one reported, so the
/// structural checks come before the ones that read a token's claims.
pub(crate) const BUILTINS: [Builtin; 8] = [
    Builtin {
        name: "tokens_valid",
        rego: include_str!("../policies/tokens_valid.rego"),
        scope: Scope::PathCalls,
    },
    Builtin {
        name: "tokens_expired",
        rego: include_str!("../policies/tokens_expired.rego"),
        scope: Scope::PathCalls,
    },
    Builtin {
        name: "tokens_chained",
        rego: include_str!("../policies/tokens_chained.rego"),
        scope: Scope::PathCalls,
    },
    Builtin {
        name: "prev_token_signed",
        rego: include_str!("../policies/prev_token_signed.rego"),
        scope: Scope::NetworkServiceServer,
    },
    Builtin {
        name: "next_token_signed",
        rego: include_str!("../policies/next_token_signed.rego"),
        scope: Scope::NetworkServiceClient,
    },
    Builtin {
        name: "client_allowed",
        rego: include_str!("../policies/client_allowed.rego"),
        scope: Scope::RegistryChange,
    },
    Builtin {
        name: "service_connection",
        rego: include_str!("../policies/service_connection.rego"),
        scope: Scope::Monitor,
    },
    Builtin {
        name: "service_allow_list",
        rego: include_str!("../policies/service_allow_list.rego"),
        scope: Scope::RequestServer,
    },
];

/// The scope of the builtin called `name`, or [`Scope::Everything`] for an added policy.
pub(crate) fn scope_of(name: &str) -> Scope {
    BUILTINS
        .iter()
        .find(|builtin| builtin.name == name)
        .map_or(Scope::Everything, |builtin| builtin.scope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;

    fn applicable(call: Call, side: Side) -> Vec<&'static str> {
        let mut input = sample::three_hop_request(0);
        input.call = call;
        input.side = side;
        BUILTINS
            .iter()
            .filter(|builtin| builtin.scope.applies_to(&input))
            .map(|builtin| builtin.name)
            .collect()
    }

    #[test]
    fn each_call_gets_the_policies_nsm_applies_to_it() {
        let common = ["tokens_valid", "tokens_expired", "tokens_chained"];
        let request_server = [&common[..], &["prev_token_signed", "service_allow_list"]].concat();
        assert_eq!(applicable(Call::Request, Side::Server), request_server);
        let close_server = [&common[..], &["prev_token_signed"]].concat();
        assert_eq!(applicable(Call::Close, Side::Server), close_server);
        let client = [&common[..], &["next_token_signed"]].concat();
        assert_eq!(applicable(Call::Request, Side::Client), client);
        assert_eq!(applicable(Call::Close, Side::Client), client);
        let registry_change = [&common[..], &["client_allowed"]].concat();
        assert_eq!(
            applicable(Call::RegistryRegister, Side::Server),
            registry_change
        );
        assert_eq!(
            applicable(Call::RegistryUnregister, Side::Server),
            registry_change
        );
        assert_eq!(applicable(Call::RegistryFind, Side::Server), common);
        assert_eq!(applicable(Call::RegistryRegister, Side::Client), common);
        assert_eq!(
            applicable(Call::MonitorConnections, Side::Server),
            ["service_connection"]
        );
    }

    #[test]
    fn each_builtin_is_the_package_named_after_it() {
        for builtin in BUILTINS {
            let package = format!("\npackage nsm.{}\n", builtin.name);
            assert!(
                builtin.rego.contains(&package),
                "{} does not declare{package}",
                builtin.name
            );
        }
    }
}
