"""Stand in for systemd's end of $NOTIFY_SOCKET: bind a unixgram socket
(an abstract name: no file permissions for the service user to need) and
print each datagram on one line, its newlines shown as spaces."""
import socket
import sys

name = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + name.lstrip("@"))
print("listening", flush=True)
while True:
    data = s.recv(4096)
    print(data.decode().strip().replace("\n", " "), flush=True)
