/*
 * presence_lua.h: the Lua scripts of presence (src/presence_redis.c), as rc_redis_script objects
 * sent with EVALSHA through the backplane (redis_cmd.h). What each one does, its keys, arguments
 * and reply: docs/redis.md ("Presence"); how presence uses them: the note at the top of
 * presence_redis.c. Included once, by presence_redis.c (each object caches its script's SHA).
 *
 * Every presence key is written only by these scripts, each atomic, so every transition (went
 * online, went offline, joined, left) is decided once, inside Redis. The status payload and the
 * visibility notes are built here too: the script that makes a change publishes it.
 *
 * Shared prologues: LUA_NOW (now in ms from Redis TIME, and status() publishing
 * {"user","online","ts"} on P:status:<user>) and LUA_NOTE (note() telling a node on
 * P:visibility:<node> whether a user is invisible). cjson.encode quotes and escapes the user id
 * (it writes '/' as '\/', which is valid JSON).
 */
#ifndef ROOMCAST_PRESENCE_LUA_H
#define ROOMCAST_PRESENCE_LUA_H

#include "roomcast/redis_cmd.h"

#define LUA_NOW                                                                                    \
    "local t = redis.call('TIME')\n"                                                               \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"                      \
    "local function status(prefix, user, online)\n"                                                \
    "  redis.call('PUBLISH', prefix .. ':status:' .. user, '{\"user\":' .. cjson.encode(user) ..\n" \
    "    ',\"online\":' .. (online and 'true' or 'false') .. ',\"ts\":' ..\n"                       \
    "    string.format('%.0f', now) .. '}')\n"                                                     \
    "end\n"

/* Tells node what it must remember of user's visibility, on P:visibility:<node> (a node id never
 * contains ':', so "<node>:<sid>" entries split at the first one). */
#define LUA_NOTE                                                                                   \
    "local function note(prefix, node, user, invisible)\n"                                         \
    "  redis.call('PUBLISH', prefix .. ':visibility:' .. node,\n"                                  \
    "    '{\"user\":' .. cjson.encode(user) .. ',\"invisible\":' ..\n"                             \
    "    (invisible and 'true' or 'false') .. '}')\n"                                              \
    "end\n"

/* One membership of user in a tracked room fewer; when it was the last, the user has left the
 * room: appended to out as ns, room, user. */
#define LUA_MEMBER_LEFT                                                                            \
    "local function member_left(prefix, ns, room, user, out)\n"                                    \
    "  local mkey = prefix .. ':members:' .. ns .. ':' .. room\n"                                  \
    "  if redis.call('HINCRBY', mkey, user, -1) <= 0 then\n"                                       \
    "    redis.call('HDEL', mkey, user)\n"                                                         \
    "    out[#out + 1] = ns; out[#out + 1] = room; out[#out + 1] = user\n"                         \
    "  end\n"                                                                                      \
    "end\n"

/* KEYS: P:nodes, P:node:N:conns, P:node:N:members, P:invisible. ARGV: P, N, entries: 'c' (or
 * 'i': a connection of a user N holds invisible) sid user, 'm' sid user ns room. */
static rc_redis_script lua_join = {.source =
    LUA_NOW
    LUA_NOTE
    "local prefix, node = ARGV[1], ARGV[2]\n"
    "if not redis.call('ZSCORE', KEYS[1], node) then return {-1} end\n"
    "local out, online, told, i = {0}, 0, {}, 3\n"
    "while i <= #ARGV do\n"
    "  local sid, user = ARGV[i + 1], ARGV[i + 2]\n"
    "  if ARGV[i] ~= 'm' then\n"
    "    local held = ARGV[i] == 'i'\n"
    "    redis.call('HSET', KEYS[2], sid, user)\n"
    "    local key = prefix .. ':presence:' .. user\n"
    "    if redis.call('SADD', key, node .. ':' .. sid) == 1 and redis.call('SCARD', key) == 1 then\n"
    "      online = online + 1\n"
    "      if held then redis.call('SADD', KEYS[4], user) end\n"
    "      if redis.call('SISMEMBER', KEYS[4], user) == 0 then status(prefix, user, true) end\n"
    "    end\n"
    "    local invisible = redis.call('SISMEMBER', KEYS[4], user) == 1\n"
    "    if invisible ~= held and not told[user] then\n"
    "      told[user] = true\n"
    "      note(prefix, node, user, invisible)\n"
    "    end\n"
    "    i = i + 3\n"
    "  else\n"
    "    local ns, room = ARGV[i + 3], ARGV[i + 4]\n"
    "    if redis.call('HSETNX', KEYS[3], sid .. '\\0' .. ns .. '\\0' .. room, user) == 1 and\n"
    "       redis.call('HINCRBY', prefix .. ':members:' .. ns .. ':' .. room, user, 1) == 1 then\n"
    "      out[#out + 1] = ns; out[#out + 1] = room; out[#out + 1] = user\n"
    "    end\n"
    "    i = i + 5\n"
    "  end\n"
    "end\n"
    "out[1] = online\n"
    "return out\n"};

/* KEYS: P:node:N:conns, P:node:N:members, P:invisible. ARGV: P, N, entries. */
static rc_redis_script lua_leave = {.source =
    LUA_NOW
    LUA_MEMBER_LEFT
    "local prefix, node = ARGV[1], ARGV[2]\n"
    "local out, i = {0}, 3\n"
    "while i <= #ARGV do\n"
    "  local sid, user = ARGV[i + 1], ARGV[i + 2]\n"
    "  if ARGV[i] == 'c' then\n"
    "    redis.call('HDEL', KEYS[1], sid)\n"
    "    local key = prefix .. ':presence:' .. user\n"
    "    if redis.call('SREM', key, node .. ':' .. sid) == 1 and redis.call('SCARD', key) == 0 then\n"
    "      out[1] = out[1] + 1\n"
    "      if redis.call('SISMEMBER', KEYS[3], user) == 0 then status(prefix, user, false) end\n"
    "    end\n"
    "    i = i + 3\n"
    "  else\n"
    "    local ns, room = ARGV[i + 3], ARGV[i + 4]\n"
    "    if redis.call('HDEL', KEYS[2], sid .. '\\0' .. ns .. '\\0' .. room) == 1 then\n"
    "      member_left(prefix, ns, room, user, out)\n"
    "    end\n"
    "    i = i + 5\n"
    "  end\n"
    "end\n"
    "return out\n"};

/* KEYS: P:nodes, P:sweeping. ARGV: N. */
static rc_redis_script lua_heartbeat = {.source =
    "if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return -1 end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "return redis.call('ZADD', KEYS[1], now, ARGV[1])\n"};

/* KEYS: P:nodes, P:sweeping, P:invisible. ARGV: P, 'dead' ttl_ms | 'node' N, budget, max nodes.
 * Returns {more, nodes finished, connections removed, users offline, ns, room, user, ...}. */
static rc_redis_script lua_sweep = {.source =
    LUA_NOW
    LUA_MEMBER_LEFT
    "local prefix, budget = ARGV[1], tonumber(ARGV[4])\n"
    "local targets\n"
    "if ARGV[2] == 'dead' then\n"
    "  local limit = string.format('(%.0f', now - tonumber(ARGV[3]))\n"
    "  for _, d in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', limit, 'LIMIT', 0, tonumber(ARGV[5]))) do\n"
    "    redis.call('ZREM', KEYS[1], d)\n"
    "    redis.call('SADD', KEYS[2], d)\n"
    "  end\n"
    "  targets = redis.call('SMEMBERS', KEYS[2])\n"
    "else\n"
    "  redis.call('ZREM', KEYS[1], ARGV[3])\n"
    "  redis.call('SADD', KEYS[2], ARGV[3])\n"
    "  targets = {ARGV[3]}\n"
    "end\n"
    "local out = {0, 0, 0, 0}\n"
    "for _, d in ipairs(targets) do\n"
    "  if budget <= 0 then out[1] = 1; break end\n"
    "  local conns = prefix .. ':node:' .. d .. ':conns'\n"
    "  local members = prefix .. ':node:' .. d .. ':members'\n"
    "  local cursor = '0'\n"
    "  repeat\n"
    "    local r = redis.call('HSCAN', members, cursor, 'COUNT', 100)\n"
    "    cursor = r[1]\n"
    "    for j = 1, #r[2], 2 do\n"
    "      local field, user = r[2][j], r[2][j + 1]\n"
    "      local a = string.find(field, '\\0', 1, true)\n"
    "      local b = a and string.find(field, '\\0', a + 1, true)\n"
    "      if redis.call('HDEL', members, field) == 1 and b then\n"
    "        member_left(prefix, string.sub(field, a + 1, b - 1), string.sub(field, b + 1), user, out)\n"
    "      end\n"
    "      budget = budget - 1\n"
    "    end\n"
    "  until cursor == '0' or budget <= 0\n"
    "  if budget > 0 then\n"
    "    cursor = '0'\n"
    "    repeat\n"
    "      local r = redis.call('HSCAN', conns, cursor, 'COUNT', 100)\n"
    "      cursor = r[1]\n"
    "      for j = 1, #r[2], 2 do\n"
    "        local sid, user = r[2][j], r[2][j + 1]\n"
    "        local key = prefix .. ':presence:' .. user\n"
    "        if redis.call('HDEL', conns, sid) == 1 then\n"
    "          out[3] = out[3] + 1\n"
    "          if redis.call('SREM', key, d .. ':' .. sid) == 1 and redis.call('SCARD', key) == 0 then\n"
    "            out[4] = out[4] + 1\n"
    "            if redis.call('SISMEMBER', KEYS[3], user) == 0 then status(prefix, user, false) end\n"
    "          end\n"
    "        end\n"
    "        budget = budget - 1\n"
    "      end\n"
    "    until cursor == '0' or budget <= 0\n"
    "  end\n"
    "  if redis.call('EXISTS', conns, members) == 0 then\n"
    "    redis.call('SREM', KEYS[2], d)\n"
    "    out[2] = out[2] + 1\n"
    "  else\n"
    "    out[1] = 1\n"
    "  end\n"
    "end\n"
    "return out\n"};

/* KEYS: P:invisible, P:presence:<user> for each user. ARGV: the users. */
static rc_redis_script lua_query = {.source =
    "local t = redis.call('TIME')\n"
    "local out = {tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}\n"
    "for i = 2, #KEYS do\n"
    "  local on = redis.call('EXISTS', KEYS[i]) == 1 and\n"
    "             redis.call('SISMEMBER', KEYS[1], ARGV[i - 1]) == 0\n"
    "  out[i] = on and 1 or 0\n"
    "end\n"
    "return out\n"};

/* KEYS: P:invisible, P:presence:<user>. ARGV: P, user, '1' visible | '0' invisible, N. */
static rc_redis_script lua_visible = {.source =
    LUA_NOW
    LUA_NOTE
    "local prefix, user, hide, caller = ARGV[1], ARGV[2], ARGV[3] == '0', ARGV[4]\n"
    "local changed\n"
    "if hide then changed = redis.call('SADD', KEYS[1], user)\n"
    "else changed = redis.call('SREM', KEYS[1], user) end\n"
    "if changed == 0 then return 0 end\n"
    "local told = {[caller] = true}\n"
    "note(prefix, caller, user, hide)\n"
    "local entries = redis.call('SMEMBERS', KEYS[2])\n"
    "for _, e in ipairs(entries) do\n"
    "  local n = string.match(e, '^[^:]*')\n"
    "  if not told[n] then\n"
    "    told[n] = true\n"
    "    note(prefix, n, user, hide)\n"
    "  end\n"
    "end\n"
    "if #entries == 0 then return 0 end\n"
    "status(prefix, user, not hide)\n"
    "return 1\n"};

/* KEYS: P:members:<ns>:<room>. ARGV: max. Returns {total, user, ...}. */
static rc_redis_script lua_members = {.source =
    "local total, max = redis.call('HLEN', KEYS[1]), tonumber(ARGV[1])\n"
    "if total <= max then\n"
    "  local out = redis.call('HKEYS', KEYS[1])\n"
    "  table.insert(out, 1, total)\n"
    "  return out\n"
    "end\n"
    "local out, cursor = {total}, '0'\n"
    "repeat\n"
    "  local r = redis.call('HSCAN', KEYS[1], cursor, 'COUNT', 200)\n"
    "  cursor = r[1]\n"
    "  for j = 1, #r[2], 2 do\n"
    "    if #out > max then break end\n"
    "    out[#out + 1] = r[2][j]\n"
    "  end\n"
    "until cursor == '0' or #out > max\n"
    "return out\n"};

#endif
