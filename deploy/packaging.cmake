# deploy/packaging.cmake - where privmta goes when installed, and the
# Debian packages CPack makes of it (`cpack -G DEB` in a build directory):
#   privmta-controller  the controller, its unit, /etc/privmta/controller.conf
#   privmta-agent       the agent, privmta-milter and privmta-sigfetch,
#                       their units, /etc/privmta/agent.conf and milter.conf
#   privmta-ctl         the admin's command
#   privmta-web         the web console, its unit, /etc/privmta/web.conf
# Users come from systemd-sysusers (deploy/systemd/privmta-*.sysusers,
# one per package, run by its postinst), the milter's socket directory from
# systemd-tmpfiles (deploy/systemd/privmta.tmpfiles, the agent's). The
# /etc files are generated at build time from the daemons' own parameter
# tables (--print-config), with the values the packaged layout sets
# (deploy/systemd/*.conf.head) after their first lines, so they cannot
# drift from the code.
include(GNUInstallDirs)

set(PM_ETC_OUT ${CMAKE_BINARY_DIR}/etc)
foreach(pair controller:privmta-controller agent:privmta-agent
             milter:privmta-milter web:privmta-web)
  string(REPLACE ":" ";" pair ${pair})
  list(GET pair 0 conf)
  list(GET pair 1 prog)
  set(head ${CMAKE_SOURCE_DIR}/deploy/systemd/${conf}.conf.head)
  add_custom_command(
    OUTPUT ${PM_ETC_OUT}/${conf}.conf
    COMMAND ${CMAKE_COMMAND} -E make_directory ${PM_ETC_OUT}
    COMMAND sh ${CMAKE_SOURCE_DIR}/deploy/systemd/make-conf.sh
            $<TARGET_FILE:${prog}> ${head} ${PM_ETC_OUT}/${conf}.conf
    DEPENDS ${prog} ${head} ${CMAKE_SOURCE_DIR}/deploy/systemd/make-conf.sh
    COMMENT "Generating /etc/privmta/${conf}.conf")
  list(APPEND PM_ETC_FILES ${PM_ETC_OUT}/${conf}.conf)
endforeach()
add_custom_target(privmta-etc ALL DEPENDS ${PM_ETC_FILES})

install(TARGETS privmta-controller DESTINATION ${CMAKE_INSTALL_SBINDIR}
        COMPONENT controller)
install(TARGETS privmta-agent privmta-milter
        DESTINATION ${CMAKE_INSTALL_SBINDIR} COMPONENT agent)
install(TARGETS privmta-sigfetch
        DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/privmta COMPONENT agent)
install(TARGETS privmta-ctl DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT ctl)
install(TARGETS privmta-web DESTINATION ${CMAKE_INSTALL_SBINDIR} COMPONENT web)

# absolute: /etc and systemd's directories, whatever the prefix
install(FILES ${PM_ETC_OUT}/controller.conf DESTINATION /etc/privmta
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
        COMPONENT controller)
install(FILES ${PM_ETC_OUT}/agent.conf ${PM_ETC_OUT}/milter.conf
        DESTINATION /etc/privmta
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
        COMPONENT agent)
install(FILES ${PM_ETC_OUT}/web.conf DESTINATION /etc/privmta
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
        COMPONENT web)
set(PM_UNITS ${CMAKE_SOURCE_DIR}/deploy/systemd)
install(FILES ${PM_UNITS}/privmta-controller.service
        DESTINATION /lib/systemd/system COMPONENT controller)
install(FILES ${PM_UNITS}/privmta-agent.service
              ${PM_UNITS}/privmta-milter.service
        DESTINATION /lib/systemd/system COMPONENT agent)
install(FILES ${PM_UNITS}/privmta-web.service
        DESTINATION /lib/systemd/system COMPONENT web)
install(FILES ${PM_UNITS}/privmta.tmpfiles DESTINATION /usr/lib/tmpfiles.d
        RENAME privmta.conf COMPONENT agent)
# each package the users it runs as, in a file of its own: one file
# shipped by several packages stops dpkg installing the second
foreach(comp controller agent web)
  install(FILES ${PM_UNITS}/privmta-${comp}.sysusers
          DESTINATION /usr/lib/sysusers.d RENAME privmta-${comp}.conf
          COMPONENT ${comp})
endforeach()
install(FILES ${CMAKE_SOURCE_DIR}/README.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/../privmta-controller
        COMPONENT controller)
install(FILES ${CMAKE_SOURCE_DIR}/README.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/../privmta-agent COMPONENT agent)
install(FILES ${CMAKE_SOURCE_DIR}/README.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/../privmta-web COMPONENT web)

# ---- CPack: three Debian packages -------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME privmta)
set(CPACK_PACKAGE_VENDOR privmta)
set(CPACK_PACKAGE_CONTACT "privmta maintainers <root@localhost>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL controller agent ctl web)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION mail)
set(CPACK_DEBIAN_CONTROLLER_PACKAGE_NAME privmta-controller)
set(CPACK_DEBIAN_AGENT_PACKAGE_NAME privmta-agent)
set(CPACK_DEBIAN_CTL_PACKAGE_NAME privmta-ctl)
set(CPACK_DEBIAN_WEB_PACKAGE_NAME privmta-web)
set(CPACK_COMPONENT_CONTROLLER_DESCRIPTION
    "privmta controller: one mail-node security policy, revisioned in LMDB, pushed to every node over CurveZMQ")
set(CPACK_COMPONENT_AGENT_DESCRIPTION
    "privmta agent and mail filter: applies the policy to this node's Postfix, filters mail (attachments, ClamAV, spamd, DKIM), shares ClamAV updates with its peers")
set(CPACK_COMPONENT_CTL_DESCRIPTION
    "privmta-ctl: the administrator's command for the privmta controller")
set(CPACK_COMPONENT_WEB_DESCRIPTION
    "privmta web console: the Privacy MTA policy page over HTTPS, a client of the privmta controller")
set(CPACK_DEBIAN_AGENT_PACKAGE_DEPENDS "postfix, systemd, swaks, libmicrohttpd12")
set(CPACK_DEBIAN_WEB_PACKAGE_DEPENDS "systemd")
# libmicrohttpd12: opened by the metrics endpoint when it starts (pm_http),
# so dpkg-shlibdeps does not see it
set(CPACK_DEBIAN_CONTROLLER_PACKAGE_DEPENDS "systemd, libmicrohttpd12")
# conffiles, and the postinst that makes the users
set(PM_DEB_OUT ${CMAKE_BINARY_DIR}/deb)
file(MAKE_DIRECTORY ${PM_DEB_OUT}/controller ${PM_DEB_OUT}/agent ${PM_DEB_OUT}/web)
file(WRITE ${PM_DEB_OUT}/controller/conffiles "/etc/privmta/controller.conf\n")
file(WRITE ${PM_DEB_OUT}/agent/conffiles
     "/etc/privmta/agent.conf\n/etc/privmta/milter.conf\n")
file(WRITE ${PM_DEB_OUT}/web/conffiles "/etc/privmta/web.conf\n")
foreach(comp controller agent web)
  file(COPY ${PM_UNITS}/postinst DESTINATION ${PM_DEB_OUT}/${comp}
       FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
                        GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
endforeach()
set(CPACK_DEBIAN_CONTROLLER_PACKAGE_CONTROL_EXTRA
    ${PM_DEB_OUT}/controller/conffiles ${PM_DEB_OUT}/controller/postinst)
set(CPACK_DEBIAN_AGENT_PACKAGE_CONTROL_EXTRA ${PM_DEB_OUT}/agent/conffiles
    ${PM_DEB_OUT}/agent/postinst)
set(CPACK_DEBIAN_WEB_PACKAGE_CONTROL_EXTRA ${PM_DEB_OUT}/web/conffiles
    ${PM_DEB_OUT}/web/postinst)
include(CPack)
