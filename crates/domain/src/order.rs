//! Orders: the status state machine, as a table.
//!
//! placed → paid → packed → shipped → out_for_delivery → delivered.
//! `cancelled` is possible until the order ships (placed, paid, packed);
//! `refunded` is possible once it was paid (paid … delivered).
//! `cancelled` and `refunded` are final.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Placed,
    Paid,
    Packed,
    Shipped,
    OutForDelivery,
    Delivered,
    Cancelled,
    Refunded,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 8] = [
        Self::Placed,
        Self::Paid,
        Self::Packed,
        Self::Shipped,
        Self::OutForDelivery,
        Self::Delivered,
        Self::Cancelled,
        Self::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::Paid => "paid",
            Self::Packed => "packed",
            Self::Shipped => "shipped",
            Self::OutForDelivery => "out_for_delivery",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
            Self::Refunded => "refunded",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("must be one of {}", Self::ALL.map(Self::as_str).join(", ")))
    }

    /// The statuses this one may move to.
    pub fn next(self) -> &'static [OrderStatus] {
        use OrderStatus::*;
        match self {
            Placed => &[Paid, Cancelled],
            Paid => &[Packed, Cancelled, Refunded],
            Packed => &[Shipped, Cancelled, Refunded],
            Shipped => &[OutForDelivery, Refunded],
            OutForDelivery => &[Delivered, Refunded],
            Delivered => &[Refunded],
            Cancelled | Refunded => &[],
        }
    }

    pub fn can_move_to(self, to: OrderStatus) -> bool {
        self.next().contains(&to)
    }

    /// A legal path from `placed` to `self` (empty for `placed`).
    pub fn path_from_placed(self) -> Vec<OrderStatus> {
        use OrderStatus::*;
        let happy = [Paid, Packed, Shipped, OutForDelivery, Delivered];
        match self {
            Placed => vec![],
            Cancelled => vec![Cancelled],
            Refunded => vec![Paid, Refunded],
            s => happy.iter().copied().take_while(|x| *x != s).chain([s]).collect(),
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An illegal transition: the client's 409.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an order cannot move from {from} to {to}")]
pub struct IllegalTransition {
    pub from: OrderStatus,
    pub to: OrderStatus,
}

/// The longest status-change note.
pub const MAX_NOTE_CHARS: usize = 1000;

/// A status change's `note`: at most 1000 characters, storable.
pub fn note(s: &str) -> Result<(), String> {
    if s.chars().count() > MAX_NOTE_CHARS {
        return Err(format!("must be at most {MAX_NOTE_CHARS} characters"));
    }
    if !crate::text::storable(s) {
        return Err(crate::text::NUL_MESSAGE.into());
    }
    Ok(())
}

pub fn transition(from: OrderStatus, to: OrderStatus) -> Result<(), IllegalTransition> {
    if from.can_move_to(to) {
        Ok(())
    } else {
        Err(IllegalTransition { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_only_before_shipping_refund_only_after_payment() {
        for s in OrderStatus::ALL {
            let before_shipping = matches!(s, OrderStatus::Placed | OrderStatus::Paid | OrderStatus::Packed);
            assert_eq!(s.can_move_to(OrderStatus::Cancelled), before_shipping, "{s}");
            let paid = matches!(
                s,
                OrderStatus::Paid
                    | OrderStatus::Packed
                    | OrderStatus::Shipped
                    | OrderStatus::OutForDelivery
                    | OrderStatus::Delivered
            );
            assert_eq!(s.can_move_to(OrderStatus::Refunded), paid, "{s}");
            assert!(!s.can_move_to(s), "no self-transition for {s}");
        }
    }

    #[test]
    fn every_path_from_placed_is_legal() {
        for s in OrderStatus::ALL {
            let mut at = OrderStatus::Placed;
            for step in s.path_from_placed() {
                transition(at, step).unwrap();
                at = step;
            }
            assert_eq!(at, s);
        }
    }

    #[test]
    fn parse_round_trips() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Ok(s));
        }
        assert!(OrderStatus::parse("lost").is_err());
    }
}
