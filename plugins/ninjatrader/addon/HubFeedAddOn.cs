// HubFeedAddOn.cs - NinjaTrader 8 add-on that serves NinjaTrader market data to the
// Exchange Connection Hub (hub-plugin-ninjatrader) over TCP.
//
// Protocol: HubFeed version 1, sdk-docs/protocols/ninjatrader.md in the hub repository.
// Text handshake and control lines, then DBN version 3 records (trades, mbp-1, mbo
// level updates, symbol mapping, error and system records) with a per-connection
// sequence number.
//
// INSTALL
//   1. Copy this file to  Documents\NinjaTrader 8\bin\Custom\AddOns\HubFeedAddOn.cs
//   2. NinjaTrader: New > NinjaScript Editor, press F5 to compile.
//   3. Optional: create Documents\NinjaTrader 8\HubFeed.config (see CONFIGURATION).
//   4. Restart NinjaTrader (add-ons start with it). The listen address is printed to
//      the NinjaScript Output window and the Log tab.
//
// CONFIGURATION (Documents\NinjaTrader 8\HubFeed.config, "key = value" lines, # comments)
//   listen            = 127.0.0.1:7496   # loopback unless you really mean otherwise
//   heartbeat_s       = 10               # default heartbeat when the client asks none
//   max_clients       = 8
//   max_subscriptions = 500              # per client
//   max_buffer_bytes  = 4194304          # per client; beyond it market data is dropped
//   user.alice        = s3cret           # any user.* line turns authentication on
//   alias.ES          = ES 03-26         # requested symbol -> NinjaTrader instrument name
//
// Written for the NinjaScript compiler: C# 5 syntax only (no string interpolation,
// no ?. operator, no async/await), helpers nested in the one public class.

#region Using declarations
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Threading;
using NinjaTrader.Cbi;
using NinjaTrader.Data;
using NinjaTrader.NinjaScript;
#endregion

namespace NinjaTrader.NinjaScript.AddOns
{
    public class HubFeedAddOn : AddOnBase
    {
        private Server server;

        protected override void OnStateChange()
        {
            if (State == State.SetDefaults)
            {
                // NinjaTrader also creates throwaway instances in SetDefaults (to list
                // add-ons), so nothing is started here.
                Name = "HubFeed";
                Description = "Serves market data to the Exchange Connection Hub (HubFeed protocol, DBN records over TCP).";
            }
            else if (State == State.Active)
            {
                try
                {
                    Config config = Config.Load(Path.Combine(NinjaTrader.Core.Globals.UserDataDir, "HubFeed.config"));
                    server = new Server(config);
                    server.Start();
                }
                catch (Exception ex)
                {
                    Report("HubFeed: could not start: " + ex.Message, true);
                    server = null;
                }
            }
            else if (State == State.Terminated)
            {
                if (server != null)
                {
                    server.Stop("NinjaTrader is closing or the add-on was recompiled");
                    server = null;
                }
            }
        }

        internal static void Report(string message, bool error)
        {
            try
            {
                NinjaTrader.Code.Output.Process(DateTime.Now.ToString("HH:mm:ss", CultureInfo.InvariantCulture) + " " + message, PrintTo.OutputTab1);
            }
            catch (Exception)
            {
                // the output window may be gone during shutdown
            }
        }

        // =====================================================================================
        // Configuration
        // =====================================================================================
        internal sealed class Config
        {
            public IPAddress ListenAddress = IPAddress.Loopback;
            public int ListenPort = 7496;
            public int HeartbeatS = 10;
            public int MaxClients = 8;
            public int MaxSubscriptions = 500;
            public int MaxBufferBytes = 4 * 1024 * 1024;
            public readonly Dictionary<string, string> Users = new Dictionary<string, string>(StringComparer.Ordinal);
            public readonly Dictionary<string, string> Aliases = new Dictionary<string, string>(StringComparer.Ordinal);

            public static Config Load(string path)
            {
                Config c = new Config();
                if (!File.Exists(path))
                    return c;
                foreach (string rawLine in File.ReadAllLines(path, Encoding.UTF8))
                {
                    string line = rawLine;
                    int hash = line.IndexOf('#');
                    if (hash >= 0)
                        line = line.Substring(0, hash);
                    line = line.Trim();
                    if (line.Length == 0)
                        continue;
                    int eq = line.IndexOf('=');
                    if (eq <= 0)
                        throw new FormatException(path + ": line '" + rawLine + "' is not key = value");
                    string key = line.Substring(0, eq).Trim();
                    string value = line.Substring(eq + 1).Trim();
                    if (key == "listen")
                    {
                        int colon = value.LastIndexOf(':');
                        if (colon <= 0)
                            throw new FormatException(path + ": listen must be host:port");
                        c.ListenAddress = IPAddress.Parse(value.Substring(0, colon).Trim('[', ']'));
                        c.ListenPort = int.Parse(value.Substring(colon + 1), CultureInfo.InvariantCulture);
                    }
                    else if (key == "heartbeat_s")
                        c.HeartbeatS = Math.Max(1, Math.Min(300, int.Parse(value, CultureInfo.InvariantCulture)));
                    else if (key == "max_clients")
                        c.MaxClients = int.Parse(value, CultureInfo.InvariantCulture);
                    else if (key == "max_subscriptions")
                        c.MaxSubscriptions = int.Parse(value, CultureInfo.InvariantCulture);
                    else if (key == "max_buffer_bytes")
                        c.MaxBufferBytes = Math.Max(65536, int.Parse(value, CultureInfo.InvariantCulture));
                    else if (key.StartsWith("user.", StringComparison.Ordinal))
                        c.Users[key.Substring(5)] = value;
                    else if (key.StartsWith("alias.", StringComparison.Ordinal))
                        c.Aliases[key.Substring(6)] = value;
                    else
                        throw new FormatException(path + ": unknown key '" + key + "'");
                }
                return c;
            }
        }

        // =====================================================================================
        // Protocol constants and text fields (sections 2, 4 and 5 of the spec)
        // =====================================================================================
        internal static class Proto
        {
            public const string Name = "hubfeed";
            public const int Version = 1;
            public const int MaxLineBytes = 4096;
            public const int MaxSymbolBytes = 70;
            public const int MaxSymbolsPerRequest = 256;
            public const string ServerName = "HubFeedAddOn/0.1.0";

            // DBN v3 ErrorCode / SystemCode
            public const byte ErrSymbolResolutionFailed = 4;
            public const byte ErrInvalidSubscription = 5;
            public const byte ErrInternal = 6;
            public const byte SysHeartbeat = 0;
            public const byte SysSubscriptionAck = 1;
            public const byte SysSlowReader = 2;
            public const byte SysUnsubscribeAck = 5;

            public static readonly string[] AllSchemas = { "trades", "mbp-1", "mbo" };

            /// <summary>Parses key=value|key=value; null when the line is not fields.</summary>
            public static Dictionary<string, string> ParseFields(string line, out string error)
            {
                error = null;
                Dictionary<string, string> fields = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (string part in line.Split('|'))
                {
                    int eq = part.IndexOf('=');
                    if (eq < 0)
                    {
                        error = "field '" + Clip(part) + "' has no '='";
                        return null;
                    }
                    string key = part.Substring(0, eq);
                    string value = part.Substring(eq + 1);
                    if (!ValidKey(key))
                    {
                        error = "bad field name '" + Clip(key) + "'";
                        return null;
                    }
                    if (HasControl(value))
                    {
                        error = "field '" + key + "' holds a control character";
                        return null;
                    }
                    if (fields.ContainsKey(key))
                    {
                        error = "field '" + key + "' given twice";
                        return null;
                    }
                    fields[key] = value;
                }
                return fields;
            }

            public static string FormatLine(params string[] keyValues)
            {
                StringBuilder sb = new StringBuilder();
                for (int i = 0; i < keyValues.Length; i += 2)
                {
                    if (i > 0)
                        sb.Append('|');
                    sb.Append(keyValues[i]).Append('=').Append(OneLine(keyValues[i + 1]));
                }
                sb.Append('\n');
                return sb.ToString();
            }

            private static bool ValidKey(string key)
            {
                if (key.Length == 0 || key.Length > 32)
                    return false;
                for (int i = 0; i < key.Length; i++)
                {
                    char ch = key[i];
                    bool ok = (ch >= 'a' && ch <= 'z') || ch == '_' || (i > 0 && ch >= '0' && ch <= '9');
                    if (!ok)
                        return false;
                }
                return true;
            }

            public static bool HasControl(string s)
            {
                foreach (char ch in s)
                    if (ch < 0x20 || ch == 0x7f)
                        return true;
                return false;
            }

            /// <summary>Text safe for a field value: separators and controls become spaces.</summary>
            public static string OneLine(string s)
            {
                StringBuilder sb = new StringBuilder(s.Length);
                foreach (char ch in s)
                    sb.Append(ch == '|' || ch < 0x20 || ch == 0x7f ? ' ' : ch);
                return sb.ToString();
            }

            public static string Clip(string s)
            {
                return s.Length <= 40 ? s : s.Substring(0, 40) + "...";
            }

            /// <summary>Spec section 4: 1..70 printable ASCII, no ',' or '|', no outer spaces.</summary>
            public static string SymbolProblem(string s)
            {
                if (s.Length == 0)
                    return "empty symbol";
                if (s.Length > MaxSymbolBytes)
                    return "symbol '" + Clip(s) + "' is longer than 70 bytes";
                foreach (char ch in s)
                    if (ch < 0x20 || ch > 0x7e || ch == ',' || ch == '|')
                        return "symbol '" + Clip(s) + "' must be printable ASCII without ',' or '|'";
                if (s[0] == ' ' || s[s.Length - 1] == ' ')
                    return "symbol '" + s + "' has leading or trailing spaces";
                return null;
            }

            public static bool TryParseUInt(string s, long min, long max, out long value)
            {
                value = 0;
                if (s == null || s.Length == 0 || s.Length > 10)
                    return false;
                foreach (char ch in s)
                    if (ch < '0' || ch > '9')
                        return false;
                value = long.Parse(s, CultureInfo.InvariantCulture);
                return value >= min && value <= max;
            }

            /// <summary>prefix + reason, cut (in the reason only, never mid-character) to limit UTF-8 bytes.</summary>
            public static string Fit(string prefix, string reason, int limit)
            {
                reason = OneLine(reason);
                int budget = limit - Encoding.UTF8.GetByteCount(prefix);
                while (reason.Length > 0 && Encoding.UTF8.GetByteCount(reason) > budget)
                {
                    int cut = reason.Length - 1;
                    if (cut > 0 && char.IsLowSurrogate(reason[cut]))
                        cut--;
                    reason = reason.Substring(0, cut);
                }
                return prefix + reason;
            }

            public static string SymbolErrorText(long id, string symbol, string reason)
            {
                return Fit("op=subscribe|id=" + id + "|symbol=" + symbol + "|error=", reason, 301);
            }

            public static string RequestErrorText(string op, long id, string reason)
            {
                return Fit("op=" + (op.Length == 0 ? "unknown" : OneLine(op)) + "|id=" + id + "|error=", reason, 301);
            }

            public static string Auth(string cram, string password)
            {
                using (HMACSHA256 mac = new HMACSHA256(Encoding.UTF8.GetBytes(password)))
                    return Hex(mac.ComputeHash(Encoding.ASCII.GetBytes(cram)));
            }

            public static bool ConstantTimeEquals(string a, string b)
            {
                if (a == null || b == null || a.Length != b.Length)
                    return false;
                int diff = 0;
                for (int i = 0; i < a.Length; i++)
                    diff |= a[i] ^ b[i];
                return diff == 0;
            }

            public static string RandomHex(int bytes)
            {
                byte[] buf = new byte[bytes];
                using (RNGCryptoServiceProvider rng = new RNGCryptoServiceProvider())
                    rng.GetBytes(buf);
                return Hex(buf);
            }

            public static string Hex(byte[] data)
            {
                StringBuilder sb = new StringBuilder(data.Length * 2);
                foreach (byte b in data)
                    sb.Append(b.ToString("x2", CultureInfo.InvariantCulture));
                return sb.ToString();
            }
        }

        // =====================================================================================
        // DBN version 3 records (spec section 6). Little-endian, fixed layouts.
        // =====================================================================================
        internal static class Dbn
        {
            public const long UndefPrice = long.MaxValue;
            public const ulong UndefTimestamp = ulong.MaxValue;
            public const byte FLast = 0x80;
            private const byte RTypeMbp0 = 0x00, RTypeMbp1 = 0x01, RTypeMbo = 0xA0;
            private const byte RTypeError = 0x15, RTypeSymbolMapping = 0x16, RTypeSystem = 0x17;
            private const byte STypeRawSymbol = 1;

            private static void Header(byte[] b, byte rtype, uint instrumentId, ulong tsEvent)
            {
                b[0] = (byte)(b.Length / 4);
                b[1] = rtype;
                PutU16(b, 2, 0); // publisher_id
                PutU32(b, 4, instrumentId);
                PutU64(b, 8, tsEvent);
            }

            public static byte[] Trade(uint iid, long price, uint size, char side, ulong tsEvent, ulong tsRecv, uint sequence)
            {
                byte[] b = new byte[48];
                Header(b, RTypeMbp0, iid, tsEvent);
                PutI64(b, 16, price);
                PutU32(b, 24, size);
                b[28] = (byte)'T';
                b[29] = (byte)side;
                b[30] = FLast;
                b[31] = 0; // depth
                PutU64(b, 32, tsRecv);
                PutU32(b, 40, 0); // ts_in_delta
                PutU32(b, 44, sequence);
                return b;
            }

            /// <summary>Top of book; a side without a price is written UNDEF_PRICE with size 0.</summary>
            public static byte[] Mbp1(uint iid, long bidPx, uint bidSz, long askPx, uint askSz, ulong tsEvent, ulong tsRecv, uint sequence)
            {
                byte[] b = new byte[80];
                Header(b, RTypeMbp1, iid, tsEvent);
                PutI64(b, 16, UndefPrice);
                PutU32(b, 24, 0);
                b[28] = (byte)'M';
                b[29] = (byte)'N';
                b[30] = FLast;
                b[31] = 0;
                PutU64(b, 32, tsRecv);
                PutU32(b, 40, 0);
                PutU32(b, 44, sequence);
                PutI64(b, 48, bidPx);
                PutI64(b, 56, askPx);
                PutU32(b, 64, bidPx == UndefPrice ? 0 : bidSz);
                PutU32(b, 68, askPx == UndefPrice ? 0 : askSz);
                PutU32(b, 72, 0); // bid_ct
                PutU32(b, 76, 0); // ask_ct
                return b;
            }

            /// <summary>A price-level update in the mbo layout (order_id 0; size = level total).</summary>
            public static byte[] Level(uint iid, long price, uint size, char action, char side, ulong tsEvent, ulong tsRecv, uint sequence)
            {
                byte[] b = new byte[56];
                Header(b, RTypeMbo, iid, tsEvent);
                PutU64(b, 16, 0); // order_id
                PutI64(b, 24, price);
                PutU32(b, 32, size);
                b[36] = FLast;
                b[37] = 0; // channel_id
                b[38] = (byte)action;
                b[39] = (byte)side;
                PutU64(b, 40, tsRecv);
                PutU32(b, 48, 0);
                PutU32(b, 52, sequence);
                return b;
            }

            public static byte[] SymbolMapping(uint iid, string symbol, ulong tsEvent)
            {
                byte[] b = new byte[176];
                Header(b, RTypeSymbolMapping, iid, tsEvent);
                byte[] raw = Encoding.ASCII.GetBytes(symbol); // validated: printable ASCII, <= 70
                b[16] = STypeRawSymbol;
                System.Buffer.BlockCopy(raw, 0, b, 17, raw.Length);
                b[88] = STypeRawSymbol;
                System.Buffer.BlockCopy(raw, 0, b, 89, raw.Length);
                PutU64(b, 160, tsEvent);
                PutU64(b, 168, UndefTimestamp);
                return b;
            }

            public static byte[] Error(string text, byte code, ulong tsEvent)
            {
                byte[] b = new byte[320];
                Header(b, RTypeError, 0, tsEvent);
                PutText(b, 16, text, 302);
                b[318] = code;
                b[319] = 1; // is_last
                return b;
            }

            public static byte[] SystemMsg(string text, byte code, ulong tsEvent)
            {
                byte[] b = new byte[320];
                Header(b, RTypeSystem, 0, tsEvent);
                PutText(b, 16, text, 303);
                b[319] = code;
                return b;
            }

            private static void PutText(byte[] b, int offset, string text, int width)
            {
                byte[] raw = Encoding.UTF8.GetBytes(text); // callers keep it within width - 1
                System.Buffer.BlockCopy(raw, 0, b, offset, Math.Min(raw.Length, width - 1));
            }

            private static void PutU16(byte[] b, int o, ushort v) { b[o] = (byte)v; b[o + 1] = (byte)(v >> 8); }
            private static void PutU32(byte[] b, int o, uint v) { for (int i = 0; i < 4; i++) b[o + i] = (byte)(v >> (8 * i)); }
            private static void PutU64(byte[] b, int o, ulong v) { for (int i = 0; i < 8; i++) b[o + i] = (byte)(v >> (8 * i)); }
            private static void PutI64(byte[] b, int o, long v) { PutU64(b, o, unchecked((ulong)v)); }
        }

        // =====================================================================================
        // Market data from NinjaTrader, shared by every client subscribed to an instrument
        // =====================================================================================
        internal struct LevelChange
        {
            public char Side;
            public long Price;
            public uint Size;
            public char Action;
        }

        internal sealed class Feed
        {
            public readonly Instrument Instrument;
            public readonly object Sync = new object();
            public readonly List<Session> Subscribers = new List<Session>();
            private MarketData marketData;
            private MarketDepth<MarketDepthRow> marketDepth;
            // last top of book (fixed point; UndefPrice when unknown)
            private long bidPx = Dbn.UndefPrice, askPx = Dbn.UndefPrice;
            private uint bidSz, askSz;
            // NinjaTrader's positional depth ladders, best first
            private readonly List<KeyValuePair<long, uint>> bids = new List<KeyValuePair<long, uint>>();
            private readonly List<KeyValuePair<long, uint>> asks = new List<KeyValuePair<long, uint>>();

            public Feed(Instrument instrument)
            {
                Instrument = instrument;
            }

            /// <summary>Subscribe NinjaTrader's data; NinjaTrader wants this on the instrument's dispatcher.</summary>
            public void Start()
            {
                Instrument.Dispatcher.InvokeAsync(new System.Action(delegate
                {
                    try
                    {
                        marketData = new MarketData(Instrument);
                        marketData.Update += OnMarketData;
                        marketDepth = new MarketDepth<MarketDepthRow>(Instrument);
                        marketDepth.Update += OnMarketDepth;
                    }
                    catch (Exception ex)
                    {
                        Report("HubFeed: subscribing " + Instrument.FullName + " failed: " + ex.Message, true);
                    }
                }));
            }

            public void Stop()
            {
                MarketData md = marketData;
                MarketDepth<MarketDepthRow> depth = marketDepth;
                marketData = null;
                marketDepth = null;
                // unsubscribe on the same dispatcher thread that subscribed (NinjaTrader's rule)
                Instrument.Dispatcher.InvokeAsync(new System.Action(delegate
                {
                    try
                    {
                        if (md != null) md.Update -= OnMarketData;
                        if (depth != null) depth.Update -= OnMarketDepth;
                    }
                    catch (Exception ex)
                    {
                        Report("HubFeed: unsubscribing " + Instrument.FullName + " failed: " + ex.Message, true);
                    }
                }));
            }

            private long Fixed(double price)
            {
                // tick-rounded, then exact decimal scaling: no binary floating-point noise
                double rounded = Instrument.MasterInstrument.RoundToTickSize(price);
                return (long)decimal.Round((decimal)rounded * 1000000000m);
            }

            private static uint Count(long volume)
            {
                return volume <= 0 ? 0u : volume >= uint.MaxValue ? uint.MaxValue : (uint)volume;
            }

            private void OnMarketData(object sender, MarketDataEventArgs e)
            {
                try
                {
                    if (e.MarketDataType != MarketDataType.Last && e.MarketDataType != MarketDataType.Bid
                        && e.MarketDataType != MarketDataType.Ask)
                        return;
                    if (double.IsNaN(e.Price) || double.IsInfinity(e.Price))
                        return;
                    ulong tsRecv = Server.NowNs();
                    ulong tsEvent = Server.ToUnixNs(e.Time, tsRecv);
                    long px = Fixed(e.Price);
                    uint size = Count(e.Volume);
                    lock (Sync)
                    {
                        if (e.MarketDataType == MarketDataType.Last)
                        {
                            // aggressor from the book at that moment
                            long bid = e.Bid > 0 ? Fixed(e.Bid) : bidPx;
                            long ask = e.Ask > 0 ? Fixed(e.Ask) : askPx;
                            char side = ask != Dbn.UndefPrice && px >= ask ? 'B'
                                : bid != Dbn.UndefPrice && px <= bid ? 'A' : 'N';
                            foreach (Session s in Subscribers)
                                s.Trade(this, px, size, side, tsEvent, tsRecv);
                            return;
                        }
                        if (e.MarketDataType == MarketDataType.Bid)
                        {
                            if (px == bidPx && size == bidSz)
                                return;
                            bidPx = px;
                            bidSz = size;
                        }
                        else
                        {
                            if (px == askPx && size == askSz)
                                return;
                            askPx = px;
                            askSz = size;
                        }
                        foreach (Session s in Subscribers)
                            s.Quote(this, bidPx, bidSz, askPx, askSz, tsEvent, tsRecv);
                    }
                }
                catch (Exception ex)
                {
                    Report("HubFeed: market data handler: " + ex.Message, true);
                }
            }

            private void OnMarketDepth(object sender, MarketDepthEventArgs e)
            {
                try
                {
                    ulong tsRecv = Server.NowNs();
                    ulong tsEvent = Server.ToUnixNs(e.Time, tsRecv);
                    lock (Sync)
                    {
                        if (e.IsReset)
                        {
                            bids.Clear();
                            asks.Clear();
                            LevelChange clear = new LevelChange { Side = 'N', Price = Dbn.UndefPrice, Size = 0, Action = 'R' };
                            foreach (Session s in Subscribers)
                                s.Levels(this, new List<LevelChange> { clear }, tsEvent, tsRecv);
                            return;
                        }
                        bool isBid = e.MarketDataType == MarketDataType.Bid;
                        if (!isBid && e.MarketDataType != MarketDataType.Ask)
                            return;
                        List<KeyValuePair<long, uint>> ladder = isBid ? bids : asks;
                        Dictionary<long, uint> before = Totals(ladder);
                        KeyValuePair<long, uint> row = new KeyValuePair<long, uint>(Fixed(e.Price), Count(e.Volume));
                        int pos = e.Position;
                        if (e.Operation == Operation.Add)
                            ladder.Insert(Math.Max(0, Math.Min(pos, ladder.Count)), row);
                        else if (e.Operation == Operation.Update)
                        {
                            if (pos >= 0 && pos < ladder.Count)
                                ladder[pos] = row;
                            else
                                ladder.Add(row);
                        }
                        else if (e.Operation == Operation.Remove)
                        {
                            if (pos >= 0 && pos < ladder.Count)
                                ladder.RemoveAt(pos);
                        }
                        List<LevelChange> changes = Diff(before, Totals(ladder), isBid ? 'B' : 'A');
                        if (changes.Count == 0)
                            return;
                        foreach (Session s in Subscribers)
                            s.Levels(this, changes, tsEvent, tsRecv);
                    }
                }
                catch (Exception ex)
                {
                    Report("HubFeed: market depth handler: " + ex.Message, true);
                }
            }

            private static Dictionary<long, uint> Totals(List<KeyValuePair<long, uint>> ladder)
            {
                // several market makers may quote one price: a level is their sum
                Dictionary<long, uint> totals = new Dictionary<long, uint>();
                foreach (KeyValuePair<long, uint> row in ladder)
                {
                    uint have;
                    totals.TryGetValue(row.Key, out have);
                    ulong sum = (ulong)have + row.Value;
                    totals[row.Key] = sum > uint.MaxValue ? uint.MaxValue : (uint)sum;
                }
                return totals;
            }

            private static List<LevelChange> Diff(Dictionary<long, uint> before, Dictionary<long, uint> after, char side)
            {
                List<LevelChange> changes = new List<LevelChange>();
                foreach (KeyValuePair<long, uint> kv in before)
                    if (!after.ContainsKey(kv.Key))
                        changes.Add(new LevelChange { Side = side, Price = kv.Key, Size = 0, Action = 'C' });
                foreach (KeyValuePair<long, uint> kv in after)
                {
                    uint old;
                    if (!before.TryGetValue(kv.Key, out old))
                        changes.Add(new LevelChange { Side = side, Price = kv.Key, Size = kv.Value, Action = kv.Value == 0 ? 'C' : 'A' });
                    else if (old != kv.Value)
                        changes.Add(new LevelChange { Side = side, Price = kv.Key, Size = kv.Value, Action = kv.Value == 0 ? 'C' : 'M' });
                }
                return changes;
            }

            /// <summary>Send the current book and top of book to one new subscriber (spec 5.1).</summary>
            public void Snapshot(Session s)
            {
                ulong now = Server.NowNs();
                lock (Sync)
                {
                    List<LevelChange> book = new List<LevelChange>();
                    book.Add(new LevelChange { Side = 'N', Price = Dbn.UndefPrice, Size = 0, Action = 'R' });
                    foreach (KeyValuePair<long, uint> kv in Totals(bids))
                        book.Add(new LevelChange { Side = 'B', Price = kv.Key, Size = kv.Value, Action = 'A' });
                    foreach (KeyValuePair<long, uint> kv in Totals(asks))
                        book.Add(new LevelChange { Side = 'A', Price = kv.Key, Size = kv.Value, Action = 'A' });
                    s.Levels(this, book, now, now);
                    if (bidPx != Dbn.UndefPrice || askPx != Dbn.UndefPrice)
                        s.Quote(this, bidPx, bidSz, askPx, askSz, now, now);
                }
            }
        }

        // =====================================================================================
        // One client connection
        // =====================================================================================
        internal sealed class Subscription
        {
            public uint InstrumentId;
            public bool Trades, Mbp1, Mbo;
            public Feed Feed;
        }

        internal sealed class Session
        {
            private readonly Server server;
            private readonly TcpClient client;
            private readonly NetworkStream stream;
            private readonly object sync = new object();
            private readonly Queue<byte[]> outQueue = new Queue<byte[]>();
            private int outBytes;
            private uint sequence;
            private long dropped, droppedReported;
            private bool closed;
            private int heartbeatS;
            private readonly Dictionary<string, Subscription> subs = new Dictionary<string, Subscription>(StringComparer.Ordinal);
            private readonly Dictionary<string, uint> ids = new Dictionary<string, uint>(StringComparer.Ordinal);
            private readonly Dictionary<Feed, Subscription> byFeed = new Dictionary<Feed, Subscription>();
            public string SessionId = "";
            public readonly string Peer;

            public Session(Server server, TcpClient client)
            {
                this.server = server;
                this.client = client;
                client.NoDelay = true;
                stream = client.GetStream();
                Peer = client.Client.RemoteEndPoint == null ? "?" : client.Client.RemoteEndPoint.ToString();
            }

            public void Run()
            {
                try
                {
                    if (!Handshake())
                        return;
                    Thread writer = new Thread(WriterLoop);
                    writer.IsBackground = true;
                    writer.Name = "HubFeed writer " + Peer;
                    writer.Start();
                    ReaderLoop();
                }
                catch (IOException) { }
                catch (ObjectDisposedException) { }
                catch (SocketException) { }
                catch (Exception ex)
                {
                    Report("HubFeed: session " + Peer + ": " + ex.Message, true);
                }
                finally
                {
                    Close();
                }
            }

            // -- handshake (spec section 3) --------------------------------------------------
            private bool Handshake()
            {
                string cram = Proto.RandomHex(16);
                WriteRaw(Proto.FormatLine("protocol", Proto.Name, "version", Proto.Version.ToString(CultureInfo.InvariantCulture),
                    "cram", cram, "server", Proto.ServerName));
                client.ReceiveTimeout = 10000; // the logon must come within 10 s
                string line;
                try
                {
                    line = ReadLine();
                }
                catch (InvalidDataException ex)
                {
                    Reject("bad_request", ex.Message);
                    return false;
                }
                catch (IOException)
                {
                    return false; // no logon within 10 s, or the client went away
                }
                client.ReceiveTimeout = 0;
                if (line == null)
                    return false;
                string error;
                Dictionary<string, string> f = Proto.ParseFields(line, out error);
                long version, hb = 0;
                if (f == null || !f.ContainsKey("version") || !Proto.TryParseUInt(f["version"], 1, 65535, out version)
                    || (f.ContainsKey("heartbeat_s") && !Proto.TryParseUInt(f["heartbeat_s"], 1, 300, out hb))
                    || f.ContainsKey("user") != f.ContainsKey("auth"))
                {
                    Reject("bad_request", "logon line is malformed" + (error != null ? ": " + error : ""));
                    return false;
                }
                if (version != Proto.Version)
                {
                    Reject("version", "version " + version + " is not supported; this server speaks " + Proto.Version);
                    return false;
                }
                if (server.Config.Users.Count > 0)
                {
                    string user, auth, password;
                    f.TryGetValue("user", out user);
                    f.TryGetValue("auth", out auth);
                    if (user == null || !server.Config.Users.TryGetValue(user, out password)
                        || !Proto.ConstantTimeEquals(Proto.Auth(cram, password), auth))
                    {
                        Reject("auth", "unknown user or wrong password");
                        return false;
                    }
                }
                if (!server.Admit(this))
                {
                    Reject("limit", server.Config.MaxClients + " clients already connected");
                    return false;
                }
                heartbeatS = hb > 0 ? (int)hb : server.Config.HeartbeatS;
                SessionId = Proto.RandomHex(8);
                WriteRaw(Proto.FormatLine("success", "1", "session_id", SessionId,
                    "heartbeat_s", heartbeatS.ToString(CultureInfo.InvariantCulture), "version", "1"));
                Report("HubFeed: client " + Peer + " logged on (session " + SessionId + ")", false);
                return true;
            }

            private void Reject(string code, string error)
            {
                WriteRaw(Proto.FormatLine("success", "0", "code", code, "error", error));
            }

            private void WriteRaw(string line)
            {
                byte[] data = Encoding.UTF8.GetBytes(line);
                stream.Write(data, 0, data.Length);
            }

            // -- control lines (spec sections 4 and 5) ----------------------------------------
            private readonly byte[] readBuf = new byte[8192];
            private int readLen;

            /// <summary>The next line without its newline, or null at EOF. Bounded at 4096 bytes.</summary>
            private string ReadLine()
            {
                while (true)
                {
                    int nl = Array.IndexOf(readBuf, (byte)'\n', 0, readLen);
                    if (nl >= 0)
                    {
                        if (nl + 1 > Proto.MaxLineBytes)
                            throw new InvalidDataException("line longer than 4096 bytes");
                        int len = nl > 0 && readBuf[nl - 1] == '\r' ? nl - 1 : nl;
                        string line;
                        try
                        {
                            line = new UTF8Encoding(false, true).GetString(readBuf, 0, len);
                        }
                        catch (ArgumentException)
                        {
                            line = "\u0001"; // invalid UTF-8: answered as a line that is not fields
                        }
                        System.Buffer.BlockCopy(readBuf, nl + 1, readBuf, 0, readLen - nl - 1);
                        readLen -= nl + 1;
                        return line;
                    }
                    if (readLen >= Proto.MaxLineBytes)
                        throw new InvalidDataException("line longer than 4096 bytes");
                    int n = stream.Read(readBuf, readLen, readBuf.Length - readLen);
                    if (n <= 0)
                        return null;
                    readLen += n;
                }
            }

            private void ReaderLoop()
            {
                while (true)
                {
                    string line;
                    try
                    {
                        line = ReadLine();
                    }
                    catch (InvalidDataException ex)
                    {
                        // the only fatal request error: say why, let the writer flush, close
                        EnqueueControl(Dbn.Error(Proto.RequestErrorText("", 0, ex.Message), Proto.ErrInvalidSubscription, Server.NowNs()));
                        Thread.Sleep(200);
                        return;
                    }
                    if (line == null)
                        return;
                    if (line.Length == 0)
                        continue;
                    HandleRequest(line);
                }
            }

            private void HandleRequest(string line)
            {
                ulong now = Server.NowNs();
                string error;
                Dictionary<string, string> f = Proto.ParseFields(line, out error);
                if (f == null)
                {
                    EnqueueControl(Dbn.Error(Proto.RequestErrorText("", 0, error), Proto.ErrInvalidSubscription, now));
                    return;
                }
                string op;
                if (!f.TryGetValue("op", out op))
                    op = "";
                string idText;
                long id;
                if (!f.TryGetValue("id", out idText))
                {
                    EnqueueControl(Dbn.Error(Proto.RequestErrorText(op, 0, "missing field 'id'"), Proto.ErrInvalidSubscription, now));
                    return;
                }
                if (!Proto.TryParseUInt(idText, 1, uint.MaxValue, out id))
                {
                    EnqueueControl(Dbn.Error(Proto.RequestErrorText(op, 0, "field 'id' is not a request id"), Proto.ErrInvalidSubscription, now));
                    return;
                }
                if (op == "ping")
                {
                    EnqueueControl(Dbn.SystemMsg("op=pong|id=" + id, Proto.SysHeartbeat, now));
                    return;
                }
                if (op != "subscribe" && op != "unsubscribe")
                {
                    EnqueueControl(Dbn.Error(Proto.RequestErrorText(op, id, "unknown op '" + Proto.Clip(op) + "'"), Proto.ErrInvalidSubscription, now));
                    return;
                }
                string symbolsText;
                f.TryGetValue("symbols", out symbolsText);
                string[] symbols = (symbolsText ?? "").Split(',');
                string problem = symbols.Length > Proto.MaxSymbolsPerRequest
                    ? symbols.Length + " symbols in one request; at most 256" : null;
                foreach (string s in symbols)
                    if (problem == null)
                        problem = Proto.SymbolProblem(s);
                bool trades = true, mbp1 = true, mbo = true;
                string schemasText;
                if (problem == null && op == "subscribe" && f.TryGetValue("schemas", out schemasText))
                {
                    trades = mbp1 = mbo = false;
                    foreach (string sc in schemasText.Split(','))
                    {
                        if (sc == "trades") trades = true;
                        else if (sc == "mbp-1") mbp1 = true;
                        else if (sc == "mbo") mbo = true;
                        else { problem = "unknown schema '" + Proto.Clip(sc) + "'; use trades, mbp-1, mbo"; break; }
                    }
                }
                if (problem != null)
                {
                    EnqueueControl(Dbn.Error(Proto.RequestErrorText(op, id, problem), Proto.ErrInvalidSubscription, now));
                    return;
                }
                if (op == "subscribe")
                    Subscribe(id, symbols, trades, mbp1, mbo, now);
                else
                    Unsubscribe(id, symbols, now);
            }

            private void Subscribe(long id, string[] symbols, bool trades, bool mbp1, bool mbo, ulong now)
            {
                int accepted = 0, rejected = 0;
                HashSet<string> seen = new HashSet<string>(StringComparer.Ordinal);
                List<Feed> fresh = new List<Feed>();
                foreach (string symbol in symbols)
                {
                    if (!seen.Add(symbol))
                        continue;
                    string name;
                    if (!server.Config.Aliases.TryGetValue(symbol, out name))
                        name = symbol;
                    Instrument instrument = null;
                    try
                    {
                        instrument = Instrument.GetInstrument(name);
                    }
                    catch (Exception) { }
                    if (instrument == null)
                    {
                        rejected++;
                        EnqueueControl(Dbn.Error(Proto.SymbolErrorText(id, symbol, "unknown instrument"), Proto.ErrSymbolResolutionFailed, now));
                        continue;
                    }
                    Subscription sub;
                    lock (sync)
                    {
                        if (!subs.TryGetValue(symbol, out sub) && subs.Count >= server.Config.MaxSubscriptions)
                        {
                            rejected++;
                            EnqueueControl(Dbn.Error(Proto.SymbolErrorText(id, symbol, "subscription limit of " + server.Config.MaxSubscriptions + " reached"), Proto.ErrInvalidSubscription, now));
                            continue;
                        }
                        uint iid;
                        if (!ids.TryGetValue(symbol, out iid))
                        {
                            iid = (uint)(ids.Count + 1);
                            ids[symbol] = iid;
                        }
                        if (sub == null)
                        {
                            sub = new Subscription { InstrumentId = iid };
                            subs[symbol] = sub;
                        }
                        sub.Trades |= trades;
                        sub.Mbp1 |= mbp1;
                        sub.Mbo |= mbo;
                        // the mapping is queued before this session can see any data of the feed
                        EnqueueControlLocked(Dbn.SymbolMapping(iid, symbol, now));
                    }
                    if (sub.Feed == null)
                    {
                        sub.Feed = server.Attach(instrument, this);
                        lock (sync)
                            byFeed[sub.Feed] = sub;
                        fresh.Add(sub.Feed);
                    }
                    accepted++;
                }
                EnqueueControl(Dbn.SystemMsg("op=subscribe|id=" + id + "|accepted=" + accepted + "|rejected=" + rejected, Proto.SysSubscriptionAck, now));
                foreach (Feed feed in fresh)
                    feed.Snapshot(this);
            }

            private void Unsubscribe(long id, string[] symbols, ulong now)
            {
                int removed = 0;
                foreach (string symbol in new HashSet<string>(symbols, StringComparer.Ordinal))
                {
                    Subscription sub;
                    lock (sync)
                    {
                        if (!subs.TryGetValue(symbol, out sub))
                            continue;
                        subs.Remove(symbol);
                        if (sub.Feed != null)
                            byFeed.Remove(sub.Feed);
                    }
                    if (sub.Feed != null)
                        server.Detach(sub.Feed, this);
                    removed++;
                }
                EnqueueControl(Dbn.SystemMsg("op=unsubscribe|id=" + id + "|removed=" + removed, Proto.SysUnsubscribeAck, now));
            }

            // -- market data (called by Feed under its lock) ------------------------------------
            private Subscription Lookup(Feed feed)
            {
                Subscription sub;
                return byFeed.TryGetValue(feed, out sub) ? sub : null;
            }

            private uint NextSequence()
            {
                // per connection, across instruments; 0 is never used (DBN: "not sequenced")
                sequence = sequence == uint.MaxValue ? 1u : sequence + 1;
                return sequence;
            }

            /// <summary>Queue one market-data record, or drop it (its sequence consumed) when full.</summary>
            private void EnqueueMarketLocked(byte[] record)
            {
                if (outBytes + record.Length > server.Config.MaxBufferBytes)
                {
                    dropped++;
                    return;
                }
                outQueue.Enqueue(record);
                outBytes += record.Length;
                Monitor.Pulse(sync);
            }

            public void Trade(Feed feed, long price, uint size, char side, ulong tsEvent, ulong tsRecv)
            {
                lock (sync)
                {
                    Subscription sub = Lookup(feed);
                    if (sub == null || !sub.Trades || closed)
                        return;
                    EnqueueMarketLocked(Dbn.Trade(sub.InstrumentId, price, size, side, tsEvent, tsRecv, NextSequence()));
                }
            }

            public void Quote(Feed feed, long bidPx, uint bidSz, long askPx, uint askSz, ulong tsEvent, ulong tsRecv)
            {
                lock (sync)
                {
                    Subscription sub = Lookup(feed);
                    if (sub == null || !sub.Mbp1 || closed)
                        return;
                    EnqueueMarketLocked(Dbn.Mbp1(sub.InstrumentId, bidPx, bidSz, askPx, askSz, tsEvent, tsRecv, NextSequence()));
                }
            }

            public void Levels(Feed feed, List<LevelChange> changes, ulong tsEvent, ulong tsRecv)
            {
                lock (sync)
                {
                    Subscription sub = Lookup(feed);
                    if (sub == null || !sub.Mbo || closed)
                        return;
                    foreach (LevelChange ch in changes)
                        EnqueueMarketLocked(Dbn.Level(sub.InstrumentId, ch.Price, ch.Size, ch.Action, ch.Side, tsEvent, tsRecv, NextSequence()));
                }
            }

            // -- output -----------------------------------------------------------------------
            public void EnqueueControl(byte[] record)
            {
                lock (sync)
                    EnqueueControlLocked(record);
            }

            private void EnqueueControlLocked(byte[] record)
            {
                if (closed)
                    return;
                // control records are never dropped; a client that lets even those pile up is gone
                if (outBytes > 4 * server.Config.MaxBufferBytes)
                {
                    closed = true;
                    Monitor.PulseAll(sync);
                    return;
                }
                outQueue.Enqueue(record);
                outBytes += record.Length;
                Monitor.Pulse(sync);
            }

            private void WriterLoop()
            {
                DateTime lastSend = DateTime.UtcNow;
                MemoryStream batch = new MemoryStream();
                try
                {
                    while (true)
                    {
                        batch.SetLength(0);
                        lock (sync)
                        {
                            while (!closed && outQueue.Count == 0 && dropped == droppedReported)
                            {
                                int wait = heartbeatS * 1000 - (int)(DateTime.UtcNow - lastSend).TotalMilliseconds;
                                if (wait <= 0)
                                    break;
                                Monitor.Wait(sync, wait);
                            }
                            if (closed)
                                return;
                            if (dropped != droppedReported)
                            {
                                string text = "op=slow_reader|dropped=" + (dropped - droppedReported);
                                droppedReported = dropped;
                                outQueue.Enqueue(Dbn.SystemMsg(text, Proto.SysSlowReader, Server.NowNs()));
                                outBytes += 320;
                            }
                            while (outQueue.Count > 0 && batch.Length < 256 * 1024)
                            {
                                byte[] rec = outQueue.Dequeue();
                                outBytes -= rec.Length;
                                batch.Write(rec, 0, rec.Length);
                            }
                        }
                        if (batch.Length == 0)
                            batch.Write(Dbn.SystemMsg("Heartbeat", Proto.SysHeartbeat, Server.NowNs()), 0, 320);
                        // outside the lock: NinjaTrader's data threads never wait on the network
                        stream.Write(batch.GetBuffer(), 0, (int)batch.Length);
                        lastSend = DateTime.UtcNow;
                    }
                }
                catch (IOException) { }
                catch (ObjectDisposedException) { }
                catch (SocketException) { }
                finally
                {
                    Close();
                }
            }

            public void Close()
            {
                List<Feed> feeds;
                lock (sync)
                {
                    if (closed && subs.Count == 0 && byFeed.Count == 0)
                    {
                        try { client.Close(); } catch (Exception) { }
                        return;
                    }
                    closed = true;
                    feeds = new List<Feed>(byFeed.Keys);
                    byFeed.Clear();
                    subs.Clear();
                    Monitor.PulseAll(sync);
                }
                foreach (Feed feed in feeds)
                    server.Detach(feed, this);
                try { client.Close(); } catch (Exception) { }
                server.Forget(this);
            }
        }

        // =====================================================================================
        // The listener and the shared feeds
        // =====================================================================================
        internal sealed class Server
        {
            public readonly Config Config;
            private TcpListener listener;
            private Thread acceptThread;
            private volatile bool running;
            private readonly object sync = new object();
            private readonly List<Session> sessions = new List<Session>();
            // keyed by instrument full name: one NinjaTrader subscription per instrument
            private readonly Dictionary<string, Feed> feeds = new Dictionary<string, Feed>(StringComparer.Ordinal);
            private static readonly long EpochTicks = new DateTime(1970, 1, 1, 0, 0, 0, DateTimeKind.Utc).Ticks;

            public Server(Config config)
            {
                Config = config;
            }

            public static ulong NowNs()
            {
                return (ulong)(DateTime.UtcNow.Ticks - EpochTicks) * 100UL;
            }

            /// <summary>NinjaTrader times are in its configured time zone; DBN wants UTC ns.</summary>
            public static ulong ToUnixNs(DateTime t, ulong fallback)
            {
                try
                {
                    DateTime utc = t.Kind == DateTimeKind.Utc ? t
                        : TimeZoneInfo.ConvertTimeToUtc(DateTime.SpecifyKind(t, DateTimeKind.Unspecified),
                            NinjaTrader.Core.Globals.GeneralOptions.TimeZoneInfo);
                    long ticks = utc.Ticks - EpochTicks;
                    return ticks > 0 ? (ulong)ticks * 100UL : fallback;
                }
                catch (Exception)
                {
                    return fallback; // an invalid or ambiguous local time (DST change)
                }
            }

            public void Start()
            {
                listener = new TcpListener(Config.ListenAddress, Config.ListenPort);
                listener.Start();
                running = true;
                Connection.ConnectionStatusUpdate += OnConnectionStatus;
                acceptThread = new Thread(AcceptLoop);
                acceptThread.IsBackground = true;
                acceptThread.Name = "HubFeed accept";
                acceptThread.Start();
                Report("HubFeed: listening on " + Config.ListenAddress + ":" + Config.ListenPort
                    + (Config.Users.Count > 0 ? " (authentication on)" : ""), false);
            }

            public void Stop(string why)
            {
                running = false;
                try { Connection.ConnectionStatusUpdate -= OnConnectionStatus; } catch (Exception) { }
                try { listener.Stop(); } catch (Exception) { }
                List<Session> all;
                lock (sync)
                    all = new List<Session>(sessions);
                foreach (Session s in all)
                {
                    s.EnqueueControl(Dbn.Error(Proto.Fit("op=feed|error=", why, 301), Proto.ErrInternal, NowNs()));
                }
                Thread.Sleep(100); // let the writers flush the notice
                foreach (Session s in all)
                    s.Close();
            }

            private void AcceptLoop()
            {
                while (running)
                {
                    TcpClient client;
                    try
                    {
                        client = listener.AcceptTcpClient();
                    }
                    catch (SocketException)
                    {
                        if (!running) return;
                        continue;
                    }
                    catch (ObjectDisposedException)
                    {
                        return;
                    }
                    Session session = new Session(this, client);
                    Thread t = new Thread(session.Run);
                    t.IsBackground = true;
                    t.Name = "HubFeed session " + session.Peer;
                    t.Start();
                }
            }

            public bool Admit(Session s)
            {
                lock (sync)
                {
                    if (sessions.Count >= Config.MaxClients)
                        return false;
                    sessions.Add(s);
                    return true;
                }
            }

            public void Forget(Session s)
            {
                lock (sync)
                    sessions.Remove(s);
            }

            public Feed Attach(Instrument instrument, Session s)
            {
                Feed feed;
                bool start = false;
                lock (sync)
                {
                    if (!feeds.TryGetValue(instrument.FullName, out feed))
                    {
                        feed = new Feed(instrument);
                        feeds[instrument.FullName] = feed;
                        start = true;
                    }
                }
                lock (feed.Sync)
                    feed.Subscribers.Add(s);
                if (start)
                    feed.Start();
                return feed;
            }

            public void Detach(Feed feed, Session s)
            {
                bool stop;
                lock (feed.Sync)
                {
                    feed.Subscribers.Remove(s);
                    stop = feed.Subscribers.Count == 0;
                }
                if (!stop)
                    return;
                lock (sync)
                {
                    if (feed.Subscribers.Count != 0)
                        return;
                    Feed current;
                    if (feeds.TryGetValue(feed.Instrument.FullName, out current) && current == feed)
                        feeds.Remove(feed.Instrument.FullName);
                }
                feed.Stop();
            }

            private void OnConnectionStatus(object sender, ConnectionStatusEventArgs e)
            {
                // informational (spec 6.8): the client sees silence, and this says why
                if (e.PriceStatus != ConnectionStatus.ConnectionLost && e.PriceStatus != ConnectionStatus.Disconnected)
                    return;
                string name = e.Connection != null && e.Connection.Options != null ? e.Connection.Options.Name : "data connection";
                string text = Proto.Fit("op=feed|error=", "NinjaTrader " + name + " price feed " + e.PriceStatus, 301);
                List<Session> all;
                lock (sync)
                    all = new List<Session>(sessions);
                foreach (Session s in all)
                    s.EnqueueControl(Dbn.Error(text, Proto.ErrInternal, NowNs()));
            }
        }
    }
}
