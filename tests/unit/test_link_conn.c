/* test_link_conn.c — link connections of one loop sharing their buffers (link_shared), over real
 * loopback TCP: frames cut anywhere by reads and interleaved across connections arrive whole and
 * in order on each, and frames sent to a peer that does not read yet queue behind each other and
 * arrive in order once it reads. */
#include "unit.h"

#include "proto/link_conn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { MAX_PAYLOAD = 1 << 20, CONNS = 2, FRAMES_MAX = 64 };

struct received {
  char node_ids[FRAMES_MAX][32];
  size_t count;
};

static uv_loop_t loop;
static uv_tcp_t listener;
static struct link_shared shared;
static struct link_conn conns[CONNS];
static struct received received[CONNS];
static size_t accepted;

static void on_frame(struct link_conn *conn, enum frame_type type, ProtobufCMessage *message) {
  struct received *got = conn->owner;
  assert_int_equal(type, FRAME_HELLO);
  assert_true(got->count < FRAMES_MAX);
  snprintf(got->node_ids[got->count++], sizeof(got->node_ids[0]), "%s",
           ((const Cdr__Hello *)message)->node_id);
}

static void on_close(struct link_conn *conn) { (void)conn; }

static void on_connection(uv_stream_t *server, int status) {
  assert_int_equal(status, 0);
  assert_true(accepted < CONNS);
  struct link_conn *conn = &conns[accepted];
  link_conn_init(conn, &loop, &shared, on_frame, on_close, &received[accepted]);
  assert_int_equal(uv_accept(server, (uv_stream_t *)&conn->tcp), 0);
  assert_int_equal(link_conn_start(conn), 0);
  accepted++;
}

/* Runs the loop for a few rounds with short pauses, so what the peer sent is read. */
static void spin_rounds(int rounds) {
  for (int i = 0; i < rounds; i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    usleep(200);
  }
}

static void spin(void) { spin_rounds(50); }

/* A Hello frame for node_id, packed as the wire carries it. */
static size_t hello_frame(char *node_id, uint8_t *out, size_t cap) {
  struct buf buffer, scratch;
  buf_init(&buffer, cap);
  buf_init(&scratch, MAX_PAYLOAD);
  Cdr__Hello hello;
  cdr__hello__init(&hello);
  hello.node_id = node_id;
  hello.window = 1;
  assert_int_equal(frame_append(&buffer, FRAME_HELLO, &hello.base, NULL, &scratch), 0);
  size_t len = buffer.len;
  memcpy(out, buffer.data, len);
  buf_free(&buffer);
  buf_free(&scratch);
  return len;
}

static int connect_client(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (const struct sockaddr *)&to, sizeof(to)), 0);
  return fd;
}

static void send_all(int fd, const uint8_t *data, size_t len) {
  assert_int_equal(send(fd, data, len, 0), (ssize_t)len);
}

static int setup(void **state) {
  (void)state;
  memset(received, 0, sizeof(received));
  accepted = 0;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(link_shared_init(&shared, MAX_PAYLOAD), 0);
  uv_tcp_init(&loop, &listener);
  struct sockaddr_in at = {.sin_family = AF_INET};
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(uv_tcp_bind(&listener, (const struct sockaddr *)&at, 0), 0);
  assert_int_equal(uv_listen((uv_stream_t *)&listener, 8, on_connection), 0);
  return 0;
}

static void close_handle(uv_handle_t *handle, void *arg) {
  (void)arg;
  if (!uv_is_closing(handle))
    uv_close(handle, NULL);
}

static int teardown(void **state) {
  (void)state;
  for (size_t i = 0; i < accepted; i++)
    link_conn_close(&conns[i], "test over");
  uv_walk(&loop, close_handle, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  link_shared_free(&shared);
  return 0;
}

static uint16_t listener_port(void) {
  struct sockaddr_storage name;
  int len = sizeof(name);
  uv_tcp_getsockname(&listener, (struct sockaddr *)&name, &len);
  return ntohs(((struct sockaddr_in *)&name)->sin_port);
}

static void frames_cut_across_reads_and_connections_arrive_whole(void **state) {
  (void)state;
  uint16_t port = listener_port();
  int clients[CONNS] = {connect_client(port), connect_client(port)};
  spin();
  assert_int_equal(accepted, CONNS);
  uint8_t a[256], b[256], c[256];
  char node_a[] = "node-a", node_b[] = "node-b", node_c[] = "node-c";
  size_t a_len = hello_frame(node_a, a, sizeof(a)), b_len = hello_frame(node_b, b, sizeof(b)),
         c_len = hello_frame(node_c, c, sizeof(c));
  /* The first connection gets the start of a frame, the second the start of another: each start
   * must be kept by its own connection while the shared buffer serves the other. */
  send_all(clients[0], a, 3);
  spin();
  send_all(clients[1], b, b_len - 2);
  spin();
  assert_int_equal(received[0].count, 0);
  assert_int_equal(received[1].count, 0);
  send_all(clients[0], a + 3, a_len - 3);
  uint8_t rest[512];
  memcpy(rest, b + b_len - 2, 2); /* the end of b, a whole c and the start of a again */
  memcpy(rest + 2, c, c_len);
  memcpy(rest + 2 + c_len, a, 5);
  send_all(clients[1], rest, 2 + c_len + 5);
  spin();
  send_all(clients[1], a + 5, a_len - 5);
  spin();
  assert_int_equal(received[0].count, 1);
  assert_string_equal(received[0].node_ids[0], "node-a");
  assert_int_equal(received[1].count, 3);
  assert_string_equal(received[1].node_ids[0], "node-b");
  assert_string_equal(received[1].node_ids[1], "node-c");
  assert_string_equal(received[1].node_ids[2], "node-a");
  /* Nothing is cut off now: a trim leaves the connections holding no buffer. */
  for (size_t i = 0; i < CONNS; i++) {
    link_conn_trim(&conns[i]);
    assert_int_equal(link_conn_buffer_bytes(&conns[i]), 0);
  }
  for (size_t i = 0; i < CONNS; i++)
    close(clients[i]);
}

static void frames_to_a_peer_that_does_not_read_queue_in_order(void **state) {
  (void)state;
  int client = connect_client(listener_port());
  spin();
  assert_int_equal(accepted, 1);
  uv_os_fd_t fd;
  int small = 4096;
  assert_int_equal(uv_fileno((uv_handle_t *)&conns[0].tcp, &fd), 0);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  /* Frames zstd cannot shrink much, more than the socket buffers hold, so later frames wait in
   * the connection's own buffers. */
  enum { SENT = 40, ID_BYTES = 20000 };
  static char ids[SENT][ID_BYTES];
  uint32_t random = 12345;
  for (int i = 0; i < SENT; i++) {
    for (int j = 0; j < ID_BYTES - 1; j++) {
      random = random * 1103515245u + 12345u;
      ids[i][j] = (char)('a' + (random >> 16) % 26);
    }
    ids[i][ID_BYTES - 1] = '\0';
    snprintf(ids[i], 7, "%05d", i);
    ids[i][5] = '-';
    Cdr__Hello hello;
    cdr__hello__init(&hello);
    hello.node_id = ids[i];
    assert_int_equal(link_conn_send(&conns[0], FRAME_HELLO, &hello.base), 0);
  }
  assert_true(link_conn_buffer_bytes(&conns[0]) > 0); /* the socket did not take it all */
  /* Read everything back as the peer, decoding frame by frame. */
  struct buf in, scratch;
  struct arena arena;
  buf_init(&in, 8 * MAX_PAYLOAD);
  buf_init(&scratch, MAX_PAYLOAD);
  arena_init(&arena, 8 * MAX_PAYLOAD);
  ZSTD_DCtx *zstd = ZSTD_createDCtx();
  int frames = 0;
  while (frames < SENT) {
    spin_rounds(2); /* lets the sending side write what waits */
    assert_int_equal(buf_reserve(&in, 65536), 0);
    ssize_t n = recv(client, in.data + in.len, 65536, MSG_DONTWAIT);
    if (n > 0)
      in.len += (size_t)n;
    struct frame_view view;
    while (frame_peek(in.data, in.len, MAX_PAYLOAD, &view) == 0) {
      ProtobufCMessage *message;
      assert_int_equal(frame_unpack(&view, zstd, &scratch, MAX_PAYLOAD, &arena, &message), 0);
      assert_string_equal(((Cdr__Hello *)message)->node_id, ids[frames]);
      frames++;
      buf_consume(&in, view.frame_len);
      arena_reset(&arena);
    }
  }
  assert_int_equal(frames, SENT);
  ZSTD_freeDCtx(zstd);
  arena_release(&arena);
  buf_free(&in);
  buf_free(&scratch);
  close(client);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(frames_cut_across_reads_and_connections_arrive_whole, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(frames_to_a_peer_that_does_not_read_queue_in_order, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
