//! Loopback addresses for Pods (pure).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// Hands out loopback addresses 127.0.x.y, one per Pod, from a first address on, going round:
/// an address given back is handed out again only after every later one was (as a cluster's
/// IPAM avoids reusing a Pod IP at once), so a proxy still holding a stopped Pod's address
/// does not reach a new Pod that is not ready yet.
#[derive(Clone, Debug)]
pub struct IpPool {
    first: u32,
    last: u32,
    next: u32,
    in_use: BTreeSet<u32>,
}

impl IpPool {
    /// A pool from `first` to 127.255.255.254.
    pub fn new(first: Ipv4Addr) -> Self {
        Self {
            first: u32::from(first),
            last: u32::from(Ipv4Addr::new(127, 255, 255, 254)),
            next: u32::from(first),
            in_use: BTreeSet::new(),
        }
    }

    /// The next free address after the last one handed out (wrapping round), or `None` when
    /// all are taken.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let free_from = |from: u32, to: u32, in_use: &BTreeSet<u32>| {
            let mut candidate = from;
            for used in in_use.range(from..=to) {
                if *used != candidate {
                    break;
                }
                candidate += 1;
            }
            (candidate <= to).then_some(candidate)
        };
        let start = self.next.clamp(self.first, self.last);
        let found = free_from(start, self.last, &self.in_use)
            .or_else(|| free_from(self.first, start, &self.in_use))?;
        self.in_use.insert(found);
        self.next = found.saturating_add(1);
        Some(Ipv4Addr::from(found))
    }

    /// Marks `ip` as taken (a Pod that already had it, found at start).
    pub fn claim(&mut self, ip: Ipv4Addr) -> bool {
        let n = u32::from(ip);
        (self.first..=self.last).contains(&n) && self.in_use.insert(n)
    }

    /// Gives `ip` back.
    pub fn release(&mut self, ip: Ipv4Addr) {
        self.in_use.remove(&u32::from(ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_handed_out_in_order_and_a_released_one_is_not_reused_at_once() {
        let mut pool = IpPool::new(Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 0, 0, 3)));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 0, 0, 4)));
        pool.release(Ipv4Addr::new(127, 0, 0, 3));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 0, 0, 5)));
    }

    #[test]
    fn allocation_wraps_round_to_released_addresses() {
        let mut pool = IpPool::new(Ipv4Addr::new(127, 255, 255, 252));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 255, 255, 252)));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 255, 255, 253)));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 255, 255, 254)));
        pool.release(Ipv4Addr::new(127, 255, 255, 253));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 255, 255, 253)));
        assert_eq!(pool.allocate(), None);
    }

    #[test]
    fn a_claimed_address_is_skipped() {
        let mut pool = IpPool::new(Ipv4Addr::new(127, 0, 0, 2));
        assert!(pool.claim(Ipv4Addr::new(127, 0, 0, 2)));
        assert!(!pool.claim(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 0, 0, 3)));
    }

    #[test]
    fn the_pool_ends_below_the_broadcast_address() {
        let mut pool = IpPool::new(Ipv4Addr::new(127, 255, 255, 254));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 255, 255, 254)));
        assert_eq!(pool.allocate(), None);
    }
}
