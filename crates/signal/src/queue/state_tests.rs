//! The queue state machine under virtual time.

use kham_proto::{LeftReason, QueuePolicy, RequestStage, Urgency};

use super::state::*;

const S: u64 = 1000;

fn settings(policy: QueuePolicy) -> QueueSettings {
    QueueSettings {
        policy,
        station_grace_ms: 60 * S,
        expire_after_ms: 600 * S,
        accept_timeout_ms: 30 * S,
        offer_timeout_ms: 20 * S,
        max_requests: 50,
        max_note_chars: 20,
        ..QueueSettings::default()
    }
}

fn req(station: &str, specialty: &str, urgency: Urgency) -> Op {
    Op::Enter(NewRequest {
        station: station.into(),
        station_name: format!("Trạm {station}"),
        specialty: specialty.into(),
        urgency,
        note: String::new(),
        patient_name: None,
        online: true,
    })
}

fn doctor(q: &mut QueueState, name: &str, specialties: &[&str], now: u64) {
    q.apply(
        Op::DoctorOnline {
            doctor: name.into(),
            specialties: specialties.iter().map(|s| s.to_string()).collect(),
        },
        now,
    )
    .expect("online");
    q.apply(
        Op::SetAvailable {
            doctor: name.into(),
            available: true,
        },
        now,
    )
    .expect("available");
}

fn take(q: &mut QueueState, d: &str, id: Option<u64>, now: u64) -> Result<Vec<Effect>, QueueError> {
    q.apply(
        Op::Take {
            doctor: d.into(),
            id,
            room: format!("room-{d}-{now}"),
        },
        now,
    )
}

fn assigned_id(fx: &[Effect]) -> u64 {
    fx.iter()
        .find_map(|e| match e {
            Effect::Assigned { id, .. } => Some(*id),
            _ => None,
        })
        .expect("an assignment")
}

fn left(fx: &[Effect]) -> Vec<(u64, LeftReason)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Left { id, reason, .. } => Some((*id, *reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn urgent_first_then_oldest_and_positions_follow() {
    let mut q = QueueState::new(settings(QueuePolicy::Take));
    q.apply(req("a", "cardiology", Urgency::Routine), 0)
        .expect("a");
    q.apply(req("b", "cardiology", Urgency::Routine), S)
        .expect("b");
    q.apply(req("c", "cardiology", Urgency::Urgent), 2 * S)
        .expect("c");
    q.apply(req("x", "paediatrics", Urgency::Routine), 3 * S)
        .expect("x");
    let pos = |q: &QueueState, s: &str| q.station_view(s, 4 * S).expect("view").position;
    assert_eq!((pos(&q, "c"), pos(&q, "a"), pos(&q, "b")), (1, 2, 3));
    assert_eq!(pos(&q, "x"), 1, "places are per specialty");
    // The one-pass views agree with the per-station ones.
    let all = q.station_views(4 * S);
    for st in ["a", "b", "c", "x"] {
        assert_eq!(all.get(st), q.station_view(st, 4 * S).as_ref(), "{st}");
    }
    let board = q.board(&["cardiology".into()], 4 * S);
    let order: Vec<&str> = board.iter().map(|e| e.station.as_str()).collect();
    assert_eq!(order, ["Trạm c", "Trạm a", "Trạm b"]);

    doctor(&mut q, "d1", &["cardiology"], 5 * S);
    let fx = take(&mut q, "d1", None, 5 * S).expect("take");
    assert!(matches!(&fx[0], Effect::Assigned { station, .. } if station == "c"));
    assert_eq!(pos(&q, "a"), 1);
    assert_eq!(
        q.station_view("c", 5 * S).expect("c").stage,
        RequestStage::Connecting
    );
}

#[test]
fn the_taking_race_has_exactly_one_winner() {
    let mut q = QueueState::new(settings(QueuePolicy::Take));
    q.apply(req("a", "cardiology", Urgency::Routine), 0)
        .expect("a");
    doctor(&mut q, "d1", &["cardiology"], 0);
    doctor(&mut q, "d2", &["cardiology"], 0);
    let id = q.board(&["cardiology".into()], 0)[0].request_id;
    let first = take(&mut q, "d1", Some(id), S);
    let second = take(&mut q, "d2", Some(id), S);
    assert!(first.is_ok());
    assert_eq!(second, Err(QueueError::AlreadyTaken));
    // "Take next" at the same instant: the loser finds the queue empty, not the same request.
    q.apply(req("b", "cardiology", Urgency::Routine), 2 * S)
        .expect("b");
    doctor(&mut q, "d3", &["cardiology"], 2 * S);
    let a = take(&mut q, "d2", None, 3 * S).expect("d2 takes b");
    assert_eq!(take(&mut q, "d3", None, 3 * S), Err(QueueError::Empty));
    assert_ne!(assigned_id(&a), id);
}

#[test]
fn bad_input_is_refused_with_typed_errors_and_changes_nothing() {
    let mut q = QueueState::new(settings(QueuePolicy::Take));
    assert!(matches!(
        q.apply(req("a", "dentistry", Urgency::Routine), 0),
        Err(QueueError::UnknownSpecialty(_))
    ));
    let mut long = NewRequest {
        station: "a".into(),
        station_name: "A".into(),
        specialty: "general".into(),
        urgency: Urgency::Routine,
        note: "x".repeat(21),
        patient_name: None,
        online: true,
    };
    assert_eq!(
        q.apply(Op::Enter(long.clone()), 0),
        Err(QueueError::TooLong(20))
    );
    long.note = "ho kéo dài".into();
    q.apply(Op::Enter(long.clone()), 0).expect("enter");
    // A flood from one station: one request, the rest refused.
    for i in 0..100 {
        assert_eq!(
            q.apply(Op::Enter(long.clone()), i),
            Err(QueueError::AlreadyQueued)
        );
    }
    assert_eq!(q.len(), 1);
    doctor(&mut q, "cardio", &["cardiology"], 0);
    let id = q.board(&["general".into()], 0)[0].request_id;
    assert_eq!(
        take(&mut q, "cardio", Some(id), S),
        Err(QueueError::NotYourSpecialty)
    );
    assert_eq!(take(&mut q, "cardio", None, S), Err(QueueError::Empty));
    assert_eq!(
        take(&mut q, "stranger", None, S),
        Err(QueueError::UnknownDoctor)
    );
    q.apply(
        Op::Cancel {
            station: "a".into(),
        },
        2 * S,
    )
    .expect("cancel");
    doctor(&mut q, "gp", &["general"], 2 * S);
    assert_eq!(
        take(&mut q, "gp", Some(id), 3 * S),
        Err(QueueError::NotFound),
        "a cancelled request"
    );
    assert_eq!(
        q.apply(
            Op::Cancel {
                station: "a".into()
            },
            3 * S
        ),
        Err(QueueError::NotFound)
    );
    // A busy doctor cannot take.
    q.apply(req("b", "general", Urgency::Routine), 4 * S)
        .expect("b");
    q.apply(
        Op::SetAvailable {
            doctor: "gp".into(),
            available: false,
        },
        4 * S,
    )
    .expect("busy");
    assert_eq!(
        take(&mut q, "gp", None, 4 * S),
        Err(QueueError::NotAvailable)
    );
}

#[test]
fn the_queue_is_bounded() {
    let mut s = settings(QueuePolicy::Take);
    s.max_requests = 3;
    let mut q = QueueState::new(s);
    for i in 0..3 {
        q.apply(req(&format!("s{i}"), "general", Urgency::Routine), 0)
            .expect("room");
    }
    assert_eq!(
        q.apply(req("s9", "general", Urgency::Routine), 0),
        Err(QueueError::QueueFull)
    );
}

#[test]
fn requests_expire_with_a_reason_and_a_taken_or_expired_one_cannot_be_taken() {
    let mut q = QueueState::new(settings(QueuePolicy::Take));
    q.apply(req("a", "general", Urgency::Routine), 0)
        .expect("a");
    let id = q.board(&["general".into()], 0)[0].request_id;
    assert!(left(&q.apply(Op::Tick, 599 * S).expect("tick")).is_empty());
    let fx = q.apply(Op::Tick, 600 * S).expect("tick");
    assert_eq!(left(&fx), [(id, LeftReason::Expired)]);
    doctor(&mut q, "gp", &["general"], 601 * S);
    assert_eq!(
        take(&mut q, "gp", Some(id), 601 * S),
        Err(QueueError::NotFound)
    );
    assert_eq!(q.stats(601 * S).specialties["general"].waiting, 0);
}

#[test]
fn a_disconnected_station_keeps_its_place_for_the_grace() {
    let mut q = QueueState::new(settings(QueuePolicy::Take));
    q.apply(req("a", "general", Urgency::Routine), 0)
        .expect("a");
    q.apply(req("b", "general", Urgency::Routine), S)
        .expect("b");
    q.apply(
        Op::StationOnline {
            station: "a".into(),
            online: false,
        },
        10 * S,
    )
    .expect("off");
    assert!(left(&q.apply(Op::Tick, 69 * S).expect("tick")).is_empty());
    q.apply(
        Op::StationOnline {
            station: "a".into(),
            online: true,
        },
        69 * S,
    )
    .expect("back");
    assert!(left(&q.apply(Op::Tick, 200 * S).expect("tick")).is_empty());
    assert_eq!(
        q.station_view("a", 200 * S).expect("a").position,
        1,
        "still first"
    );
    // Away past the grace: out.
    q.apply(
        Op::StationOnline {
            station: "a".into(),
            online: false,
        },
        210 * S,
    )
    .expect("off");
    let fx = q.apply(Op::Tick, 270 * S).expect("tick");
    assert_eq!(left(&fx).len(), 1);
    assert_eq!(left(&fx)[0].1, LeftReason::Abandoned);
    assert_eq!(q.station_view("b", 270 * S).expect("b").position, 1);
}

#[test]
fn a_doctor_who_takes_and_vanishes_returns_the_request_to_the_head() {
    let mut q = QueueState::new(settings(QueuePolicy::Take));
    q.apply(req("a", "general", Urgency::Routine), 0)
        .expect("a");
    q.apply(req("b", "general", Urgency::Routine), S)
        .expect("b");
    doctor(&mut q, "gp", &["general"], S);
    let id = assigned_id(&take(&mut q, "gp", None, 2 * S).expect("take a"));
    // A newer request arrives; then the doctor's connection is gone before reaching the call.
    q.apply(req("c", "general", Urgency::Routine), 3 * S)
        .expect("c");
    let fx = q
        .apply(
            Op::DoctorGone {
                doctor: "gp".into(),
            },
            4 * S,
        )
        .expect("gone");
    assert!(fx.contains(&Effect::Returned {
        id,
        doctor: "gp".into()
    }));
    assert_eq!(
        q.station_view("a", 4 * S).expect("a").position,
        1,
        "back at the head"
    );
    assert_eq!(q.board(&["general".into()], 4 * S)[0].request_id, id);
    // An urgent request still goes before it.
    q.apply(req("u", "general", Urgency::Urgent), 5 * S)
        .expect("u");
    assert_eq!(q.station_view("a", 5 * S).expect("a").position, 2);

    // A doctor who takes and never reaches the call: the same after accept_timeout.
    doctor(&mut q, "gp2", &["general"], 6 * S);
    let u = assigned_id(&take(&mut q, "gp2", None, 6 * S).expect("take u"));
    assert!(q.apply(Op::Tick, 35 * S).expect("tick").is_empty());
    let fx = q.apply(Op::Tick, 36 * S).expect("tick");
    assert!(fx.contains(&Effect::Returned {
        id: u,
        doctor: "gp2".into()
    }));
    assert!(
        !q.is_available("gp2"),
        "a doctor who let it lapse is set busy"
    );
    assert_eq!(q.station_view("u", 36 * S).expect("u").position, 1);
    // A late confirmation is refused: the request is not its own any more.
    assert_eq!(
        q.apply(
            Op::Confirm {
                doctor: "gp2".into(),
                id: u
            },
            37 * S
        ),
        Err(QueueError::NotFound)
    );
}

#[test]
fn confirming_serves_the_request_once_and_records_the_wait() {
    let mut q = QueueState::new(settings(QueuePolicy::Take));
    q.apply(req("a", "general", Urgency::Routine), 0)
        .expect("a");
    doctor(&mut q, "gp", &["general"], 0);
    let id = assigned_id(&take(&mut q, "gp", None, 12 * S).expect("take"));
    let fx = q
        .apply(
            Op::Confirm {
                doctor: "gp".into(),
                id,
            },
            13 * S,
        )
        .expect("confirm");
    assert_eq!(left(&fx), [(id, LeftReason::Taken)]);
    assert_eq!(
        q.apply(
            Op::Confirm {
                doctor: "gp".into(),
                id
            },
            13 * S
        ),
        Err(QueueError::NotFound)
    );
    assert!(q.is_empty());
    assert_eq!(q.stats(14 * S).served_waits_ms, [13 * S]);
    assert!(
        !q.is_available("gp"),
        "in the call: busy until it says otherwise"
    );
    assert_eq!(
        q.stats(HISTORY_MS + 20 * S).served_waits_ms,
        Vec::<u64>::new()
    );
}

#[test]
fn offer_policy_goes_to_the_longest_idle_doctor_and_moves_on_after_a_decline_or_silence() {
    let mut q = QueueState::new(settings(QueuePolicy::Offer));
    doctor(&mut q, "early", &["general"], 0);
    doctor(&mut q, "late", &["general"], 5 * S);
    let fx = q
        .apply(req("a", "general", Urgency::Routine), 10 * S)
        .expect("a");
    let offered = |fx: &[Effect]| {
        fx.iter().find_map(|e| match e {
            Effect::Offered { doctor, id, .. } => Some((doctor.clone(), *id)),
            _ => None,
        })
    };
    let (d, id) = offered(&fx).expect("an offer");
    assert_eq!(d, "early");
    // Declined: offered to the next one.
    let fx = q
        .apply(
            Op::Decline {
                doctor: "early".into(),
                id,
            },
            11 * S,
        )
        .expect("decline");
    assert_eq!(offered(&fx), Some(("late".into(), id)));
    // The one it was not offered to cannot accept it.
    assert_eq!(
        q.apply(
            Op::Accept {
                doctor: "early".into(),
                id,
                room: "r".into()
            },
            12 * S
        ),
        Err(QueueError::AlreadyTaken)
    );
    // Silence past the offer timeout: back in the queue, that doctor set busy.
    let fx = q.apply(Op::Tick, 31 * S).expect("tick");
    assert!(fx.contains(&Effect::Returned {
        id,
        doctor: "late".into()
    }));
    assert!(!q.is_available("late"));
    // Both declined or lapsed: it waits for a new doctor, who gets it at once.
    assert_eq!(
        q.station_view("a", 31 * S).expect("a").stage,
        RequestStage::Waiting
    );
    q.apply(
        Op::DoctorOnline {
            doctor: "new".into(),
            specialties: vec!["general".into()],
        },
        32 * S,
    )
    .expect("online");
    let fx = q
        .apply(
            Op::SetAvailable {
                doctor: "new".into(),
                available: true,
            },
            32 * S,
        )
        .expect("available");
    assert_eq!(offered(&fx), Some(("new".into(), id)));
    let fx = q
        .apply(
            Op::Accept {
                doctor: "new".into(),
                id,
                room: "r1".into(),
            },
            33 * S,
        )
        .expect("accept");
    assert_eq!(assigned_id(&fx), id);
}

#[test]
fn many_doctors_serve_every_request_exactly_once() {
    let mut q = QueueState::new(QueueSettings {
        max_requests: 1000,
        ..settings(QueuePolicy::Take)
    });
    for i in 0..200u64 {
        let u = if i % 7 == 0 {
            Urgency::Urgent
        } else {
            Urgency::Routine
        };
        q.apply(req(&format!("s{i}"), "general", u), i)
            .expect("enter");
    }
    for d in 0..20 {
        doctor(&mut q, &format!("d{d}"), &["general"], 0);
    }
    let mut served = std::collections::HashSet::new();
    let mut now = 1000;
    while !q.is_empty() {
        for d in 0..20 {
            let name = format!("d{d}");
            if let Ok(fx) = take(&mut q, &name, None, now) {
                let id = assigned_id(&fx);
                q.apply(
                    Op::Confirm {
                        doctor: name.clone(),
                        id,
                    },
                    now,
                )
                .expect("confirm");
                assert!(served.insert(id), "served twice: {id}");
                q.apply(
                    Op::SetAvailable {
                        doctor: name,
                        available: true,
                    },
                    now,
                )
                .expect("again");
            }
        }
        now += S;
    }
    assert_eq!(served.len(), 200);
}

/// The service reads its clock before it takes the store's lock, so two confirmations can
/// arrive a millisecond out of order. The history stays in order and the estimate of the wait
/// is sane (it once subtracted a later time from an earlier one: a panic that stopped every
/// view's refresh in debug, an absurd estimate in release).
#[test]
fn operations_out_of_time_order_keep_the_clock_and_the_estimate_sane() {
    let mut q = QueueState::new(settings(QueuePolicy::Take));
    for s in ["a", "b", "c"] {
        q.apply(req(s, "general", Urgency::Routine), 0)
            .expect("enter");
    }
    doctor(&mut q, "gp1", &["general"], 0);
    doctor(&mut q, "gp2", &["general"], 0);
    let first = assigned_id(&take(&mut q, "gp1", None, 5 * S).expect("take"));
    let second = assigned_id(&take(&mut q, "gp2", None, 5 * S).expect("take"));
    let confirm = |q: &mut QueueState, d: &str, id, now| {
        q.apply(
            Op::Confirm {
                doctor: d.into(),
                id,
            },
            now,
        )
        .expect("confirm")
    };
    confirm(&mut q, "gp1", first, 8 * S + 1);
    // Read before the first confirmation's, applied after it.
    confirm(&mut q, "gp2", second, 8 * S);
    let views = q.station_views(9 * S);
    let c = views.get("c").expect("c waits");
    assert_eq!(c.position, 1);
    assert!(
        c.eta_ms >= 1000 && c.eta_ms <= 600 * S,
        "estimate {} ms",
        c.eta_ms
    );
    // The late operation's wait was counted at the state's clock, never before the earlier one.
    assert_eq!(q.stats(9 * S).served_waits_ms, [8 * S + 1, 8 * S + 1]);
}
