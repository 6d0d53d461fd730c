//! Why this module exists: the plugin contract (the WIT package in `wit/`) is part of the
//! program, not only of the repository: `mailpipe wit` prints it, `mailpipe new` vendors it
//! into a plugin project made anywhere, and `mailpipe wit --typescript` derives the types JS
//! plugin authors see in their editor from it. Every version the host loads is here.

pub mod typescript;

/// A version of the contract: its number and its WIT text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contract {
    pub version: &'static str,
    pub wit: &'static str,
}

/// `mailpipe:plugin@0.1.0`: the message as one record (wit/v0.1).
pub const V0_1: Contract = Contract {
    version: "0.1.0",
    wit: include_str!("../../../wit/v0.1/plugin.wit"),
};

/// `mailpipe:plugin@0.2.0`: the message as a resource read on demand, `check-config`,
/// the envelope (wit/v0.2).
pub const V0_2: Contract = Contract {
    version: "0.2.0",
    wit: include_str!("../../../wit/v0.2/plugin.wit"),
};

/// `mailpipe:plugin@0.3.0`: 0.2 and the `notify` action (wit/v0.3).
pub const V0_3: Contract = Contract {
    version: "0.3.0",
    wit: include_str!("../../../wit/v0.3/plugin.wit"),
};

/// `mailpipe:plugin@0.4.0`: 0.3, `msg.stage()` and the `refuse` action (wit/v0.4).
pub const V0_4: Contract = Contract {
    version: "0.4.0",
    wit: include_str!("../../../wit/v0.4/plugin.wit"),
};

/// Every version this host loads, oldest first.
pub const ALL: &[Contract] = &[V0_1, V0_2, V0_3, V0_4];

/// The newest version: what `mailpipe wit` prints (new projects: `Lang::contract`).
pub const CURRENT: Contract = V0_4;

/// The version `version` ("0.1", "0.1.0", "0.2", ...).
pub fn find(version: &str) -> Option<Contract> {
    ALL.iter()
        .copied()
        .find(|c| c.version == version || c.version.strip_suffix(".0") == Some(version))
}

/// The world a plugin component implements.
pub const WORLD: &str = "plugin";

#[cfg(test)]
mod tests {
    #[test]
    fn every_version_names_its_own_package() {
        for c in super::ALL {
            assert!(
                c.wit
                    .contains(&format!("package mailpipe:plugin@{};", c.version)),
                "{}",
                c.version
            );
        }
        assert_eq!(super::find("0.1"), Some(super::V0_1));
        assert_eq!(super::find("0.2.0"), Some(super::V0_2));
        assert_eq!(super::find("0.3"), Some(super::V0_3));
        assert_eq!(super::find("0.4"), Some(super::V0_4));
        assert_eq!(super::find("0.5"), None);
        let supported: Vec<_> = super::ALL.iter().map(|c| c.version).collect();
        assert_eq!(supported, crate::plugin::SUPPORTED_CONTRACTS);
    }
}
