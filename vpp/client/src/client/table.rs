//! VPP's message table for one connection: `name_crc` → the dynamic id VPP gave the message,
//! built from `sockclnt_create_reply`, and the check of this crate's CRCs against it.
//! Ids differ between VPP builds and runs, so a table lives exactly as long as its
//! connection.

use std::collections::HashMap;

use crate::api::{MESSAGES, MessageTableEntry};
use crate::message::{MessageInfo, name_crc};

use super::error::CrcMismatch;

#[derive(Debug, Default)]
pub(crate) struct MessageTable {
    /// This crate's messages that VPP has, by name.
    ids: HashMap<&'static str, u16>,
    /// The other way, for routing what VPP sends.
    by_id: HashMap<u16, &'static MessageInfo>,
    /// Every name VPP listed, for naming unexpected messages.
    vpp_names: HashMap<u16, String>,
    mismatches: Vec<CrcMismatch>,
}

impl MessageTable {
    pub(crate) fn new(entries: &[MessageTableEntry]) -> Self {
        let vpp: HashMap<&str, u16> = entries.iter().map(|e| (e.name.as_str(), e.index)).collect();
        let mut vpp_crcs: HashMap<&str, u32> = HashMap::new();
        for entry in entries {
            if let Some((name, crc)) = entry.name.as_str().rsplit_once('_')
                && let Ok(crc) = u32::from_str_radix(crc, 16)
            {
                vpp_crcs.insert(name, crc);
            }
        }
        let mut table = Self {
            vpp_names: entries
                .iter()
                .map(|e| (e.index, e.name.as_str().to_owned()))
                .collect(),
            ..Self::default()
        };
        for info in MESSAGES {
            if let Some(&id) = vpp.get(name_crc(info.name, info.crc).as_str()) {
                table.ids.insert(info.name, id);
                table.by_id.insert(id, info);
            } else if let Some(&crc) = vpp_crcs.get(info.name) {
                table.mismatches.push(CrcMismatch {
                    message: info.name,
                    ours: info.crc,
                    vpp: crc,
                });
            }
        }
        table
    }

    /// Messages VPP has under another CRC.
    pub(crate) fn mismatches(&self) -> &[CrcMismatch] {
        &self.mismatches
    }

    pub(crate) fn id(&self, name: &str) -> Option<u16> {
        self.ids.get(name).copied()
    }

    pub(crate) fn message(&self, id: u16) -> Option<&'static MessageInfo> {
        self.by_id.get(&id).copied()
    }

    /// How VPP names a message id, for errors.
    pub(crate) fn vpp_name(&self, id: u16) -> String {
        self.vpp_names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| "not in VPP's table".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::FixedString;

    fn entry(index: u16, name: &str) -> MessageTableEntry {
        MessageTableEntry {
            index,
            name: FixedString::new(name).unwrap(),
        }
    }

    #[test]
    fn finds_ids_by_name_and_crc_and_reports_other_crcs() {
        let table = MessageTable::new(&[
            entry(23, "control_ping_51077d14"),
            entry(300, "tap_create_v3_00000001"),
            entry(301, "unrelated_12345678"),
        ]);
        assert_eq!(table.id("control_ping"), Some(23));
        assert_eq!(table.message(23).map(|m| m.name), Some("control_ping"));
        assert_eq!(table.id("tap_create_v3"), None);
        assert_eq!(
            table.mismatches(),
            [CrcMismatch {
                message: "tap_create_v3",
                ours: 0x3f3fd1df,
                vpp: 1
            }]
        );
        assert_eq!(table.vpp_name(301), "unrelated_12345678");
    }
}
