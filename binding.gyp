{
  "targets": [
    {
      "target_name": "quicether_native",
      "sources": [
        "native/napi.c",
        "native/engine.c",
        "native/engine_cmd.c",
        "native/uplink.c",
        "native/peer.c",
        "native/quic_conn.c",
        "native/txq.c",
        "native/ctrl_stream.c",
        "native/forward.c",
        "native/icmp.c",
        "native/fib.c",
        "native/fib_naive.c",
        "native/acl.c",
        "native/ct.c",
        "native/tls_gnutls.c",
        "native/tun_linux.c",
        "native/tun_offload.c",
        "native/udp_linux.c",
        "native/reorder.c",
        "native/bond.c",
        "native/path.c",
        "native/sched.c",
        "native/pkt.c",
        "native/peercred.c"
      ],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-fvisibility=hidden"],
      "cflags_c": ["-std=gnu11", "<!@(pkg-config --cflags libngtcp2 libngtcp2_crypto_gnutls gnutls)"],
      "libraries": ["<!@(pkg-config --libs libngtcp2 libngtcp2_crypto_gnutls gnutls)", "-lpthread"]
    }
  ]
}
