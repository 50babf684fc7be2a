//! Screen shares through the room: the mid a publisher names in its offer is checked against
//! the offer and reaches subscribers as `TrackInfo::screen`; a bad list is a typed error and
//! makes no session.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod world;

use std::time::Duration;

use kham_sfu::str0m::change::SdpAnswer;
use kham_sfu::str0m::media::{Direction, MediaKind};
use kham_sfu::{RoomEvent, ScreenMidError, SfuError};
use world::{BOTH, Client, World};

#[test]
fn a_named_share_reaches_subscribers_marked_and_a_bad_list_is_refused() {
    let mut w = World::new();
    let t0 = w.now;
    let mut station = Client::new("station", "127.0.0.2:5000", t0);
    let mut change = station.rtc.sdp_api();
    let audio = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let camera = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let share = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = change.apply().unwrap();
    let offer = offer.to_sdp_string();

    // Bad lists: an audio mid, an unknown mid, too many. No session is made.
    for (screen, want) in [
        (vec![audio.to_string()], ScreenMidError::NotVideo),
        (vec!["zz".to_owned()], ScreenMidError::NotVideo),
        (
            vec![camera.to_string(), share.to_string(), camera.to_string()],
            ScreenMidError::TooMany,
        ),
    ] {
        let e = w
            .room
            .offer(t0, station.id.clone(), BOTH, &offer, Some(&screen))
            .unwrap_err();
        assert!(matches!(&e, SfuError::Screen(got) if *got == want), "{e:?}");
        assert!(e.public_message().starts_with("screen: "), "{e:?}");
        assert!(w.room.peer_ids().is_empty());
    }

    let answer = w
        .room
        .offer(
            t0,
            station.id.clone(),
            BOTH,
            &offer,
            Some(&[share.to_string()]),
        )
        .unwrap();
    station
        .rtc
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();
    w.clients.push(station);
    w.join(
        Client::new("doctor", "127.0.0.3:5000", t0),
        MediaKind::Audio,
        Direction::RecvOnly,
    );
    w.run_until(t0 + Duration::from_secs(2));

    let tracks = w
        .events
        .iter()
        .rev()
        .find_map(|e| match e {
            RoomEvent::Offer { peer, tracks, .. } if peer.as_str() == "doctor" => Some(tracks),
            _ => None,
        })
        .expect("the doctor is offered the station's tracks");
    let marked: Vec<bool> = tracks.iter().map(|t| t.screen).collect();
    assert_eq!(tracks.len(), 3, "{tracks:?}");
    assert_eq!(marked.iter().filter(|s| **s).count(), 1, "{tracks:?}");
    let shared = tracks.iter().find(|t| t.screen).unwrap();
    assert_eq!(shared.kind, kham_proto::MediaKind::Video);
}
