#!/usr/bin/env python3
"""Kernel-socket scenarios for synack's stored captures.

Run only by make.sh, inside a private network namespace (`unshare -n`):
every socket here binds to loopback (127.0.0.1, ::1) of that namespace,
or to 198.18.0.0/24 on a veth pair that exists only inside it. Each
scenario starts tcpdump (or dumpcap), runs its exchange with ordinary
kernel sockets, and stops the recorder. Every wait is bounded.

Usage: scenarios.py OUTDIR NAME [NAME...]
"""
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

OUT = sys.argv[1]
PORT = 8080


def recorder(name, iface="lo", opts=(), filt="tcp"):
    """Starts tcpdump on `iface` into OUT/name; returns a stop function."""
    path = os.path.join(OUT, name)
    # -B: a 64 MiB kernel buffer. With the default (2 MiB) tcpdump lost
    # 118 of 220 frames of the zero-window burst on lo ("dropped by kernel"),
    # and the recording stopped before the close.
    cmd = ["tcpdump", "-i", iface, "--immediate-mode", "-B", "65536", "-Z", "root", "-U",
           "-w", path, *opts, filt]
    ready = "listening on"
    log = open(path + ".log", "w+")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log)
    for _ in range(200):  # at most 10 s
        log.seek(0)
        if ready in log.read() or proc.poll() is not None:
            break
        time.sleep(0.05)
    time.sleep(0.2)

    def stop():
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
        os.unlink(path + ".log")

    return stop


def listener(host="127.0.0.1", port=PORT, backlog=16, family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(backlog)
    s.settimeout(10)
    return s


def client(host="127.0.0.1", port=PORT, family=socket.AF_INET, bind=None):
    c = socket.socket(family, socket.SOCK_STREAM)
    c.settimeout(10)
    if bind is not None:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        c.bind(bind)
    c.connect((host, port))
    return c


def read_all(sock, limit=1 << 24):
    data = b""
    while len(data) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def linger0(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def exchange(c, a):
    c.sendall(b"hello")
    assert a.recv(100) == b"hello"
    a.sendall(b"hello, client")
    assert c.recv(100) == b"hello, client"


def close_client_first(c, a):
    """FIN / ACK / FIN / ACK: the server waits past its delayed ACK."""
    c.shutdown(socket.SHUT_WR)
    assert a.recv(100) == b""
    time.sleep(0.3)
    a.close()
    assert c.recv(100) == b""
    c.close()


def four_way_client(name, family=socket.AF_INET, host="127.0.0.1", **rec):
    srv = listener(host, family=family)
    stop = recorder(name, **rec)
    c = client(host, family=family)
    a, _ = srv.accept()
    exchange(c, a)
    close_client_first(c, a)
    stop()
    srv.close()


def four_way_server(name):
    srv = listener()
    stop = recorder(name)
    c = client()
    a, _ = srv.accept()
    exchange(c, a)
    a.shutdown(socket.SHUT_WR)
    assert c.recv(100) == b""
    time.sleep(0.3)
    c.close()
    assert a.recv(100) == b""
    a.close()
    stop()
    srv.close()


def three_way(name):
    """The server closes right after reading EOF: its ACK rides on its FIN."""
    srv = listener()
    stop = recorder(name)
    c = client()
    a, _ = srv.accept()
    exchange(c, a)
    c.shutdown(socket.SHUT_WR)
    assert a.recv(100) == b""
    a.close()
    assert c.recv(100) == b""
    c.close()
    stop()
    srv.close()


def refused(name):
    stop = recorder(name)
    try:
        client(port=PORT + 1)
        raise SystemExit("connect to a closed port succeeded")
    except ConnectionRefusedError:
        pass
    stop()


def rst_client(name):
    srv = listener()
    stop = recorder(name)
    c = client()
    a, _ = srv.accept()
    exchange(c, a)
    linger0(c)
    c.close()
    try:
        a.recv(100)
    except ConnectionResetError:
        pass
    a.close()
    stop()
    srv.close()


def rst_server(name):
    srv = listener()
    stop = recorder(name)
    c = client()
    a, _ = srv.accept()
    exchange(c, a)
    linger0(a)
    a.close()
    try:
        c.recv(100)
    except ConnectionResetError:
        pass
    c.close()
    stop()
    srv.close()


def syn_retransmission(name):
    """listen(0) holds one connection: the second SYN is dropped until the
    first is accepted, then its retransmission (after 1 s) succeeds."""
    srv = listener(backlog=0)
    stop = recorder(name)
    first = client()
    second = socket.socket()
    second.settimeout(10)
    second.setblocking(False)
    try:
        second.connect(("127.0.0.1", PORT))
    except BlockingIOError:
        pass
    time.sleep(0.5)
    a1, _ = srv.accept()
    second.setblocking(True)
    second.settimeout(10)
    # Wait (bounded) until the retransmitted SYN got through.
    a2, _ = srv.accept()
    for sock, acc in ((first, a1), (second, a2)):
        exchange(sock, acc)
        close_client_first(sock, acc)
    stop()
    srv.close()


def syn_timeout(name):
    """A listener whose queue is full and never accepted: SYNs go
    unanswered; with tcp_syn_retries=1 the client gives up after ~3 s."""
    with open("/proc/sys/net/ipv4/tcp_syn_retries", "w") as f:
        f.write("1")
    srv = listener(backlog=0)
    stop = recorder(name, filt="tcp port %d and not port 40001" % PORT)
    holder = client(bind=("127.0.0.1", 40001))
    try:
        client(bind=("127.0.0.1", 40002))
        raise SystemExit("the second connect succeeded")
    except (TimeoutError, socket.timeout, OSError):
        pass
    stop()
    holder.close()
    srv.close()


def zero_window(name):
    """The server does not read; its small receive buffer fills: zero
    window, probes, then it reads everything and the window opens."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", PORT))
    srv.listen(4)
    srv.settimeout(10)
    stop = recorder(name)
    c = client()
    a, _ = srv.accept()
    c.setblocking(False)
    sent = 0
    payload = b"x" * 200_000
    deadline = time.time() + 5
    while sent < len(payload) and time.time() < deadline:
        try:
            sent += c.send(payload[sent:])
        except BlockingIOError:
            time.sleep(0.05)
            if time.time() > deadline - 3.5:
                break
    time.sleep(1.0)  # zero-window probes
    c.setblocking(True)
    got = 0
    a.settimeout(10)
    while got < sent:
        chunk = a.recv(65536)
        if not chunk:
            break
        got += len(chunk)
    c.shutdown(socket.SHUT_WR)
    read_all(a)
    a.close()
    read_all(c)
    c.close()
    stop()
    srv.close()


def half_close(name):
    """The client shuts its sending side; the server keeps sending."""
    srv = listener()
    stop = recorder(name)
    c = client()
    a, _ = srv.accept()
    c.sendall(b"request")
    c.shutdown(socket.SHUT_WR)
    assert a.recv(100) == b"request"
    assert a.recv(100) == b""
    for i in range(3):
        a.sendall(b"part %d " % i)
        time.sleep(0.1)
    a.close()
    got = read_all(c)
    assert got.startswith(b"part 0"), got
    c.close()
    stop()
    srv.close()


def concurrent(name):
    srv = listener()
    stop = recorder(name)
    cs = [client() for _ in range(3)]
    accs = [srv.accept()[0] for _ in range(3)]
    for c, a in zip(cs, accs):
        c.sendall(b"hello")
    for c, a in zip(cs, accs):
        assert a.recv(100) == b"hello"
        a.sendall(b"hi")
    for c, a in zip(cs, accs):
        assert c.recv(100) == b"hi"
    for c, a in zip(cs, accs):
        close_client_first(c, a)
    stop()
    srv.close()


def port_reuse(name):
    """The same client port twice: the server closes first (TIME-WAIT on
    its side), then the client connects again from the same port."""
    srv = listener()
    stop = recorder(name)
    for _ in range(2):
        c = client(bind=("127.0.0.1", 40000))
        a, _ = srv.accept()
        exchange(c, a)
        a.shutdown(socket.SHUT_WR)
        assert c.recv(100) == b""
        c.close()
        assert a.recv(100) == b""
        a.close()
        time.sleep(0.2)
    stop()
    srv.close()


def still_open(name):
    """The capture ends while the connection is established."""
    srv = listener()
    stop = recorder(name)
    c = client()
    a, _ = srv.accept()
    exchange(c, a)
    stop()
    c.close()
    a.close()
    srv.close()


def transfer(name):
    """100 kB each way, then a client-first close (cut later to start
    mid-stream)."""
    srv = listener()
    stop = recorder(name)
    c = client()
    a, _ = srv.accept()
    blob = b"y" * 100_000
    done = threading.Event()

    def serve():
        got = 0
        while got < len(blob):
            got += len(a.recv(65536))
        a.sendall(blob)
        done.set()

    t = threading.Thread(target=serve)
    t.start()
    c.sendall(blob)
    got = 0
    while got < len(blob):
        got += len(c.recv(65536))
    t.join(timeout=10)
    close_client_first(c, a)
    stop()
    srv.close()


def ipv6(name):
    four_way_client(name, family=socket.AF_INET6, host="::1")


SCENARIOS = {
    "four_way_client.pcap": lambda n: four_way_client(n),
    "four_way_server.pcap": four_way_server,
    "three_way.pcap": three_way,
    "refused.pcap": refused,
    "rst_client.pcap": rst_client,
    "rst_server.pcap": rst_server,
    "syn_retransmission.pcap": syn_retransmission,
    "syn_timeout.pcap": syn_timeout,
    "zero_window.pcap": zero_window,
    "half_close.pcap": half_close,
    "concurrent.pcap": concurrent,
    "port_reuse.pcap": port_reuse,
    "still_open.pcap": still_open,
    "transfer.pcap": transfer,
    "ipv6.pcap": ipv6,
    "any_sll2.pcap": lambda n: four_way_client(n, iface="any"),
    "nanosecond.pcap": lambda n: four_way_client(
        n, opts=("--time-stamp-precision=nano",)
    ),
    "snaplen60.pcap": lambda n: four_way_client(n, opts=("-s", "60")),
}

if __name__ == "__main__":
    for scenario in sys.argv[2:]:
        SCENARIOS[scenario](scenario)
        print("made", scenario, flush=True)
