//! Who joins which room in each scenario.

use kham_proto::Role;

/// The load shapes of issue 15 (CAPACITY.md §1.5, S1-S4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// S1: N rooms of a 1:1 consult, both publish and receive each other.
    Consults,
    /// S2: N rooms of four parties, all publish, each receives the three others.
    Groups,
    /// S3: one publisher to N subscribers; kham's calls hold 8 at most, so N > 7 subscribers
    /// are spread over rooms of one publisher and 7 subscribers.
    Fanout,
    /// S4: N participants (N/2 consults) joining at once.
    Joins,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Consults => "consults",
            Scenario::Groups => "groups",
            Scenario::Fanout => "fanout",
            Scenario::Joins => "joins",
        }
    }
}

/// One participant of the plan.
#[derive(Debug, Clone)]
pub struct Seat {
    pub room: String,
    pub identity: String,
    pub role: Role,
    pub publish: bool,
    /// Whether it should receive media (a lone publisher in a fanout does not).
    pub receives: bool,
}

fn seat(room: &str, identity: String, role: Role, publish: bool, receives: bool) -> Seat {
    Seat {
        room: room.to_owned(),
        identity,
        role,
        publish,
        receives,
    }
}

/// A participant that publishes and receives.
fn member(room: &str, identity: String, role: Role) -> Seat {
    seat(room, identity, role, true, true)
}

/// The participants of `scenario` at size `n`, in join order. `tag` keeps room names of
/// different runs on one server apart.
pub fn seats(scenario: Scenario, n: usize, tag: &str) -> Vec<Seat> {
    let mut v = Vec::new();
    match scenario {
        Scenario::Consults | Scenario::Joins => {
            let rooms = if scenario == Scenario::Joins {
                n.div_ceil(2)
            } else {
                n
            };
            for r in 0..rooms {
                let room = format!("{tag}-c{r}");
                v.push(member(&room, format!("{room}-doctor"), Role::Doctor));
                v.push(member(&room, format!("{room}-station"), Role::Station));
            }
            if scenario == Scenario::Joins {
                v.truncate(n.max(2));
            }
        }
        Scenario::Groups => {
            for r in 0..n {
                let room = format!("{tag}-g{r}");
                v.push(member(&room, format!("{room}-doctor"), Role::Doctor));
                for s in 0..3 {
                    v.push(member(&room, format!("{room}-s{s}"), Role::Station));
                }
            }
        }
        Scenario::Fanout => {
            // kham allows at most 8 participants in a call (rooms.max_participants <= 8): N
            // subscribers are spread over rooms of one publisher and up to 7 subscribers.
            for r in 0..n.div_ceil(FANOUT_PER_ROOM) {
                let room = format!("{tag}-f{r}");
                v.push(seat(
                    &room,
                    format!("{room}-doctor"),
                    Role::Doctor,
                    true,
                    false,
                ));
                let k = (n - r * FANOUT_PER_ROOM).min(FANOUT_PER_ROOM);
                for s in 0..k {
                    v.push(seat(
                        &room,
                        format!("{room}-s{s}"),
                        Role::Station,
                        false,
                        true,
                    ));
                }
            }
        }
    }
    v
}

/// Subscribers per publisher in the fanout scenario: kham's largest call is 8.
pub const FANOUT_PER_ROOM: usize = 7;

/// Participants per room the server must allow.
pub fn room_size(scenario: Scenario, n: usize) -> usize {
    match scenario {
        Scenario::Consults | Scenario::Joins => 2,
        Scenario::Groups => 4,
        Scenario::Fanout => n.min(FANOUT_PER_ROOM) + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(seats(Scenario::Consults, 5, "t").len(), 10);
        assert_eq!(seats(Scenario::Groups, 2, "t").len(), 8);
        let f = seats(Scenario::Fanout, 7, "t");
        assert_eq!(f.len(), 8);
        assert!(f[0].publish && !f[0].receives && !f[1].publish);
        let f = seats(Scenario::Fanout, 50, "t");
        assert_eq!(f.iter().filter(|s| s.publish).count(), 8);
        assert_eq!(f.iter().filter(|s| s.receives).count(), 50);
        assert_eq!(room_size(Scenario::Fanout, 50), 8);
        assert_eq!(seats(Scenario::Joins, 7, "t").len(), 7);
    }
}
