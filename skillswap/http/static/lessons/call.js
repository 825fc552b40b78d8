// The lesson call page: fetch the call (room and ICE servers), open the WebSocket, and connect
// one RTCPeerConnection to the room's other participant through `call` frames.
//
// Whoever joins makes an offer (the other may already be waiting). When both offer at once
// (or one offer went out before the other had joined), the "polite" peer - the higher user id -
// gives its own up and answers; the other ignores the colliding offer and sends its own again,
// which carries the candidates it has gathered so far.
"use strict";

(function () {
  const form = document.getElementById("join");
  const hangupButton = document.getElementById("hangup");
  const stateOut = document.getElementById("state");
  const problem = document.getElementById("problem");
  const localVideo = document.getElementById("local");
  const remoteVideo = document.getElementById("remote");

  let me = null; // this user's id, from the access token
  let call = null; // {room_id, ice_servers, expires_at}
  let socket = null;
  let pc = null;
  let media = null;
  let makingOffer = false;
  let ignoreOffer = false;

  function show(state) {
    stateOut.value = state;
    stateOut.textContent = state;
    stateOut.dataset.state = state;
  }

  function fail(text) {
    problem.textContent = text;
    problem.hidden = false;
  }

  function userOf(token) {
    try {
      const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return Number(JSON.parse(atob(payload)).sub);
    } catch (e) {
      return null;
    }
  }

  function signal(data) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "call", room: call.room_id, signal: data }));
    }
  }

  function newConnection() {
    pc = new RTCPeerConnection({ iceServers: call.ice_servers });
    for (const track of media.getTracks()) {
      pc.addTrack(track, media);
    }
    pc.addEventListener("track", (event) => {
      if (remoteVideo.srcObject !== event.streams[0]) {
        remoteVideo.srcObject = event.streams[0];
      }
    });
    pc.addEventListener("icecandidate", (event) => {
      if (event.candidate) {
        signal({
          kind: "candidate",
          candidate: event.candidate.candidate,
          sdpMid: event.candidate.sdpMid,
          sdpMLineIndex: event.candidate.sdpMLineIndex,
        });
      }
    });
    pc.addEventListener("connectionstatechange", () => show(pc.connectionState));
  }

  async function offer() {
    try {
      makingOffer = true;
      await pc.setLocalDescription();
      signal({ kind: "offer", sdp: pc.localDescription.sdp });
    } finally {
      makingOffer = false;
    }
  }

  async function received(from, data) {
    const polite = me !== null && me > from;
    if (data.kind === "offer") {
      const collision = makingOffer || pc.signalingState !== "stable";
      ignoreOffer = !polite && collision;
      if (ignoreOffer) {
        if (pc.localDescription && pc.localDescription.type === "offer") {
          signal({ kind: "offer", sdp: pc.localDescription.sdp });
        }
        return;
      }
      await pc.setRemoteDescription({ type: "offer", sdp: data.sdp });
      await pc.setLocalDescription();
      signal({ kind: "answer", sdp: pc.localDescription.sdp });
    } else if (data.kind === "answer") {
      if (pc.signalingState === "have-local-offer") {
        await pc.setRemoteDescription({ type: "answer", sdp: data.sdp });
      }
    } else if (data.kind === "candidate") {
      try {
        await pc.addIceCandidate({
          candidate: data.candidate,
          sdpMid: data.sdpMid,
          sdpMLineIndex: data.sdpMLineIndex,
        });
      } catch (e) {
        if (!ignoreOffer) {
          console.warn("an ICE candidate was refused", e);
        }
      }
    } else if (data.kind === "hangup") {
      // The other side left: start afresh and wait for their next offer.
      pc.close();
      remoteVideo.srcObject = null;
      newConnection();
      show("waiting");
    }
  }

  // Signals are handled one after the other, in the order they came.
  let queue = Promise.resolve();

  function openSocket(token) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(scheme + "//" + location.host + "/ws/?token=" + encodeURIComponent(token));
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ type: "subscribe", room: call.room_id }));
      show("waiting");
      offer().catch((e) => fail(String(e)));
    });
    socket.addEventListener("message", (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "call" && frame.room === call.room_id) {
        queue = queue.then(() => received(frame.from, frame.signal)).catch((e) => fail(String(e)));
      } else if (frame.type === "error") {
        fail(frame.detail + " (" + frame.code + ")");
      }
    });
    socket.addEventListener("close", () => {
      if (pc && pc.connectionState !== "connected") {
        show("disconnected");
      }
    });
  }

  async function join(token, order) {
    problem.hidden = true;
    me = userOf(token);
    const response = await fetch("/api/lessons/" + encodeURIComponent(order) + "/call/", {
      headers: { Authorization: "Bearer " + token, Accept: "application/json" },
    });
    const body = await response.json();
    if (!response.ok) {
      fail(body.detail + " (" + body.code + ")");
      return;
    }
    call = body;
    media = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    localVideo.srcObject = media;
    newConnection();
    openSocket(token);
    hangupButton.disabled = false;
  }

  function hangUp() {
    if (!pc) {
      return;
    }
    signal({ kind: "hangup" });
    pc.close();
    pc = null;
    if (media) {
      for (const track of media.getTracks()) {
        track.stop();
      }
    }
    if (socket) {
      socket.close();
    }
    remoteVideo.srcObject = null;
    hangupButton.disabled = true;
    show("closed");
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    join(String(data.get("token")), String(data.get("order"))).catch((e) => fail(String(e)));
  });
  hangupButton.addEventListener("click", hangUp);
  window.addEventListener("pagehide", hangUp);

  // `#token=...&order=...` joins at once; the fragment never reaches the server and is dropped.
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("token") && fragment.get("order")) {
    form.elements.token.value = fragment.get("token");
    form.elements.order.value = fragment.get("order");
    history.replaceState(null, "", location.pathname + location.search);
    join(fragment.get("token"), fragment.get("order")).catch((e) => fail(String(e)));
  }
})();
