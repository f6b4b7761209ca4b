package nginximport

import (
	"path"
	"strings"
)

// harmlessNames are the directives that cannot change who sees what:
// tuning, logging, caching and compression. Leaving one out still
// translates the configuration with exit status 0 (section 15); the list
// is docs/migrating.md's "Left out without harm", which must say the same.
var harmlessNames = map[string]bool{
	// processes and the event loop: sessionproxy schedules itself
	"worker_processes": true, "worker_connections": true, "worker_rlimit_nofile": true, "worker_cpu_affinity": true,
	"events": true, "pid": true, "user": true, "daemon": true, "master_process": true, "multi_accept": true,
	"use": true, "accept_mutex": true, "load_module": true, "thread_pool": true, "aio": true, "directio": true,
	"env": true, "pcre_jit": true, "worker_shutdown_timeout": true,
	// I/O tuning
	"sendfile": true, "tcp_nopush": true, "tcp_nodelay": true, "sendfile_max_chunk": true, "output_buffers": true,
	"postpone_output": true, "reset_timedout_connection": true, "lingering_close": true, "lingering_time": true,
	"lingering_timeout": true, "send_timeout": true, "proxy_send_timeout": true, "keepalive_requests": true,
	"client_body_buffer_size": true, "client_header_buffer_size": true, "large_client_header_buffers": true,
	"client_body_in_file_only": true, "client_body_temp_path": true, "types_hash_max_size": true,
	"types_hash_bucket_size": true, "server_names_hash_bucket_size": true, "server_names_hash_max_size": true,
	"variables_hash_max_size": true, "variables_hash_bucket_size": true, "map_hash_bucket_size": true,
	"proxy_buffering": true, "proxy_buffers": true, "proxy_buffer_size": true, "proxy_busy_buffers_size": true,
	"proxy_temp_path": true, "proxy_max_temp_file_size": true, "proxy_temp_file_write_size": true,
	"proxy_request_buffering": true, "proxy_http_version": true, "proxy_socket_keepalive": true,
	"fastcgi_buffers": true, "fastcgi_buffer_size": true, "fastcgi_busy_buffers_size": true, "fastcgi_buffering": true,
	"fastcgi_read_timeout": true, "fastcgi_send_timeout": true, "fastcgi_connect_timeout": true,
	"fastcgi_keep_conn": true, "fastcgi_temp_path": true, "fastcgi_max_temp_file_size": true,
	"fastcgi_request_buffering": true, "keepalive": true, "keepalive_time": true, "resolver": true, "resolver_timeout": true,
	"http2": true, "http2_push_preload": true, "http2_max_concurrent_streams": true, "http3": true, "quic_retry": true,
	"ssl_session_cache": true, "ssl_session_timeout": true, "ssl_session_tickets": true, "ssl_buffer_size": true,
	"ssl_prefer_server_ciphers": true, "ssl_ciphers": true, "ssl_ecdh_curve": true, "ssl_dhparam": true,
	"ssl_stapling": true, "ssl_stapling_verify": true, "ssl_trusted_certificate": true, "ssl_early_data": false,
	"open_file_cache": true, "open_file_cache_valid": true, "open_file_cache_min_uses": true, "open_file_cache_errors": true,
	"msie_padding": true, "server_tokens": true, "charset": true, "source_charset": true, "types": true, "default_type": true,
	"absolute_redirect": true, "port_in_redirect": true, "server_name_in_redirect": true, "merge_slashes": false,
	// logging
	"access_log": true, "error_log": true, "log_format": true, "log_not_found": true, "log_subrequest": true,
	"open_log_file_cache": true, "rewrite_log": true, "limit_req_log_level": true, "limit_conn_log_level": true,
	// compression
	"gzip": true, "gzip_static": true, "gzip_vary": true, "gzip_proxied": true, "gzip_comp_level": true,
	"gzip_buffers": true, "gzip_http_version": true, "gzip_min_length": true, "gzip_types": true, "gzip_disable": true,
	"brotli": true, "brotli_static": true, "brotli_types": true, "brotli_comp_level": true, "gunzip": true,
	// caching
	"expires": true, "etag": true, "if_modified_since": true, "proxy_cache": true, "proxy_cache_path": true,
	"proxy_cache_valid": true, "proxy_cache_key": true, "proxy_cache_use_stale": true, "proxy_cache_lock": true,
	"proxy_cache_bypass": true, "proxy_no_cache": true, "proxy_cache_methods": true, "proxy_cache_min_uses": true,
	"proxy_cache_revalidate": true, "proxy_cache_background_update": true, "proxy_ignore_headers": false,
	"fastcgi_cache": true, "fastcgi_cache_path": true, "fastcgi_cache_valid": true, "fastcgi_cache_key": true,
	"fastcgi_cache_use_stale": true, "fastcgi_cache_bypass": true, "fastcgi_no_cache": true,
	// FastCGI parameters a fastcgi: pool sets itself (fastcgiParams
	// below); fastcgi_split_path_info is translated (script: split)
	"fastcgi_index": true,
}

// fastcgiParams are the parameters a fastcgi: pool sets as nginx's
// fastcgi_params and snippets/fastcgi-php.conf do (section 13).
var fastcgiParams = map[string]bool{
	"SCRIPT_FILENAME": true, "SCRIPT_NAME": true, "PATH_INFO": true, "PATH_TRANSLATED": true, "QUERY_STRING": true,
	"REQUEST_METHOD": true, "CONTENT_TYPE": true, "CONTENT_LENGTH": true, "REQUEST_URI": true, "DOCUMENT_URI": true,
	"DOCUMENT_ROOT": true, "SERVER_PROTOCOL": true, "REQUEST_SCHEME": true, "HTTPS": true, "GATEWAY_INTERFACE": true,
	"SERVER_SOFTWARE": true, "REMOTE_ADDR": true, "REMOTE_PORT": true, "SERVER_ADDR": true, "SERVER_PORT": true,
	"SERVER_NAME": true, "REDIRECT_STATUS": true, "HTTP_PROXY": true, "REMOTE_USER": true,
}

// scriptParams are the parameters that say which script runs, each with
// the values (space-separated) that mean what a fastcgi: pool does:
// "fastcgi_param SCRIPT_FILENAME $document_root/admin.php" runs another
// script than the path names, which a pool cannot, and is not harmless.
var scriptParams = map[string]string{
	"SCRIPT_FILENAME": "$document_root$fastcgi_script_name $realpath_root$fastcgi_script_name $request_filename",
	"SCRIPT_NAME":     "$fastcgi_script_name",
	"DOCUMENT_URI":    "$document_uri $uri",
	"DOCUMENT_ROOT":   "$document_root $realpath_root",
	"PATH_INFO":       "$fastcgi_path_info $path_info",
	"PATH_TRANSLATED": "$document_root$fastcgi_path_info $realpath_root$fastcgi_path_info $document_root$path_info",
}

// harmlessIncludes are include files that, when absent here, hold only
// what is harmless or what sessionproxy does itself.
var harmlessIncludes = map[string]bool{"mime.types": true, "fastcgi_params": true, "fastcgi.conf": true,
	"fastcgi-php.conf": true, "proxy_params": true}

// harmless reports whether leaving d out cannot change who sees what.
func harmless(d *Directive) bool {
	switch d.Name {
	case "include":
		return harmlessIncludes[path.Base(arg(d, 0))]
	case "fastcgi_param":
		// every request header goes as HTTP_* (section 13)
		p := strings.ToUpper(arg(d, 0))
		if v, ok := scriptParams[p]; ok {
			// which script runs: only the values a fastcgi: pool sets
			return len(d.Args) == 2 && strings.Contains(" "+v+" ", " "+arg(d, 1)+" ")
		}
		return fastcgiParams[p] || strings.HasPrefix(p, "HTTP_") && p != "HTTP_PROXY" && (arg(d, 1) == "$host" || arg(d, 1) == "$http_"+strings.ToLower(p[5:]))
	case "set":
		// Debian's snippets/fastcgi-php.conf keeps the split's PATH_INFO
		// past try_files: what a pool with script: split sends anyway
		return len(d.Args) == 2 && arg(d, 0) == "$path_info" && arg(d, 1) == "$fastcgi_path_info"
	case "listen":
		return false
	}
	return harmlessNames[d.Name]
}
